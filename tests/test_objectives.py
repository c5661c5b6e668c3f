import math
from dataclasses import dataclass

import torch

from vaekit.distributions import DiagonalGaussian, Gaussian, standard_normal_log_prob
from vaekit.models import build_model
from vaekit.models.base import VAE
from vaekit.objectives import elbo_terms, iw_log_likelihood, optimise_posterior, training_loss


def test_iw_bound_with_k1_equals_elbo_in_expectation():
    torch.manual_seed(0)
    model = build_model("seed", image_shape=(1, 8, 8)).eval()
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.3))
    copies = x.repeat(2000, 1, 1, 1)  # (2000*4, 1, 8, 8): 2000 independent draws per example
    with torch.no_grad():
        elbo = -elbo_terms(model, copies).neg_elbo.view(2000, 4).mean(0)
    iw1 = iw_log_likelihood(model, copies, k=1).view(2000, 4).mean(0)
    assert torch.allclose(elbo, iw1, atol=0.15)


def test_iw_bound_tightens_with_k():
    torch.manual_seed(0)
    # PyTorch's init: its random biases make z matter at once (Keras' zero biases barely do).
    model = build_model("seed", image_shape=(1, 8, 8), init="torch").eval()
    x = torch.bernoulli(torch.full((8, 1, 8, 8), 0.3))
    bounds = [iw_log_likelihood(model, x, k=k, chunk=64).mean().item() for k in (1, 10, 200)]
    assert bounds[0] < bounds[1] < bounds[2]


def _mean_neg_elbo(model, x, posterior, draws=500):
    """-ELBO per example averaged over many z draws, so two posteriors compare without noise."""
    def rep(t):
        return t.repeat(draws, *([1] * (t.dim() - 1)))  # (draws * B, ...), draw-major

    with torch.no_grad():
        terms = elbo_terms(model, rep(x), DiagonalGaussian(rep(posterior.mean), rep(posterior.log_var)))
    return terms.neg_elbo.view(draws, len(x)).mean(0)  # (B,)


def test_fitting_each_posterior_alone_raises_the_elbo_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = build_model("seed", image_shape=(1, 8, 8), latent_dim=4, init="torch").eval()
    x = torch.bernoulli(torch.full((6, 1, 8, 8), 0.3))
    with torch.no_grad():  # an encoder far off: every posterior N(0, e^2 I), 8.8 nats of KL that buy nothing
        model.to_log_var.weight.zero_()
        model.to_log_var.bias.fill_(2.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        amortised = model.encode(x)
    fitted = optimise_posterior(model, x, steps=60, lr=0.05)
    gain = _mean_neg_elbo(model, x, amortised) - _mean_neg_elbo(model, x, fitted)  # (B,)
    assert (gain > 2).all(), gain  # every example's own ELBO rose, by several nats
    assert fitted.mean.shape == (6, 4) and not fitted.mean.requires_grad and fitted.mean.grad_fn is None
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_free_bits_floor_each_dimension():
    from vaekit.objectives import ELBOTerms

    terms = ELBOTerms(torch.zeros(2), torch.tensor([[0.1, 2.0], [0.1, 2.0]]), torch.zeros(2, 2))
    assert training_loss(terms).item() == torch.tensor(2.1).item()
    assert abs(training_loss(terms, free_bits=0.5).item() - 2.5) < 1e-6
    assert abs(training_loss(terms, kl_weight=0.5).item() - 1.05) < 1e-6


SIGMA = 0.5


@dataclass(frozen=True)
class LinearConfig:
    latent_dim: int = 2
    shift: float = 0.0  # added to the exact posterior mean: 0 makes q(z|x) = p(z|x)
    widen: float = 1.0  # multiplies the exact posterior variance


class LinearGaussian(VAE):
    """p(z) = N(0, I), p(x|z) = N(z, SIGMA^2 I): p(x) = N(0, (1 + SIGMA^2) I) and the posterior is
    N(x / (1 + SIGMA^2), SIGMA^2 / (1 + SIGMA^2)), so every bound has a closed-form answer."""

    Config = LinearConfig
    kind = "test"

    def __init__(self, config=LinearConfig()):
        super().__init__(config)
        self.likelihood = Gaussian(1)
        with torch.no_grad():
            self.likelihood.log_scale.fill_(math.log(SIGMA))

    def encode(self, x):
        s2 = SIGMA ** 2
        mean = x / (1 + s2) + self.config.shift
        return DiagonalGaussian(mean, torch.full_like(x, math.log(self.config.widen * s2 / (1 + s2))))

    def decode(self, z):
        return z


def true_log_px(x):
    var = 1 + SIGMA ** 2
    return (-0.5 * (math.log(2 * math.pi * var) + x.pow(2) / var)).sum(1)


def linear_data(n, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * math.sqrt(1 + SIGMA ** 2)  # x ~ p(x)


# ---- the estimators ------------------------------------------------------------------------------
def test_iw_bound_is_exact_with_the_true_posterior_for_any_chunking():
    # With q = p(z|x) every importance weight equals p(x): a misaligned x/z pairing across the batch
    # or a wrong running log-sum-exp over chunks would break the equality.
    model, x = LinearGaussian(LinearConfig(3)).eval(), linear_data(7, 3)
    for k, chunk in ((1, 1), (10, 3), (10, 10), (25, 4)):
        assert torch.allclose(iw_log_likelihood(model, x, k, chunk), true_log_px(x), atol=1e-4)


def test_iw_bound_uses_a_given_posterior_as_its_proposal():
    # An encoder far off (shifted, widened) and the exact posterior passed in: the bound must be
    # exact, so the passed posterior, not a fresh encoding, supplied every z and log q.
    model = LinearGaussian(LinearConfig(3, shift=0.6, widen=2.0)).eval()
    x = linear_data(7, 3)
    exact = LinearGaussian(LinearConfig(3)).encode(x)
    assert torch.allclose(iw_log_likelihood(model, x, 10, 4, posterior=exact), true_log_px(x), atol=1e-4)
    assert not torch.allclose(iw_log_likelihood(model, x, 10, 4), true_log_px(x), atol=1e-2)


def test_iw_bound_with_k1_and_the_same_noise_is_the_one_sample_elbo():
    model = build_model("seed", image_shape=(1, 8, 8)).eval()
    x = torch.bernoulli(torch.full((6, 1, 8, 8), 0.3))
    torch.manual_seed(3)
    terms = elbo_terms(model, x)
    torch.manual_seed(3)
    iw1 = iw_log_likelihood(model, x, k=1)
    posterior = model.encode(x)
    # Same z: the same reconstruction, with the KL as its one-sample estimate log q(z|x) - log p(z).
    one_sample = -terms.reconstruction + standard_normal_log_prob(terms.z) - posterior.log_prob(terms.z)
    assert torch.allclose(iw1, one_sample.detach(), atol=1e-4)


def test_iw_nll_tightens_with_k_towards_the_true_nll():
    model, x = LinearGaussian(LinearConfig(2, shift=0.6, widen=2.0)).eval(), linear_data(400)
    torch.manual_seed(0)
    true_nll = -true_log_px(x).mean().item()
    nll = {k: -iw_log_likelihood(model, x, k, chunk=16).mean().item() for k in (1, 10, 100)}
    assert nll[1] > nll[10] > nll[100] > true_nll - 0.01
    assert nll[1] - true_nll > 0.3 and nll[100] - true_nll < 0.1 * (nll[1] - true_nll)

import math

import torch

from vaekit.distributions import Bernoulli, DiagonalGaussian, Gaussian, standard_normal_log_prob


def test_kl_matches_monte_carlo_estimate():
    torch.manual_seed(0)
    q = DiagonalGaussian(torch.tensor([[0.5, -1.0]]), torch.tensor([[-0.3, 0.4]]))
    z = q.rsample(200_000)  # (n, 1, 2)
    mc = (q.log_prob(z) - standard_normal_log_prob(z)).mean()
    assert abs(q.kl().sum().item() - mc.item()) < 0.01


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    prior = DiagonalGaussian(torch.zeros(3, 4), torch.zeros(3, 4))
    assert torch.allclose(prior.kl(), torch.zeros(3, 4))
    other = DiagonalGaussian(torch.ones(3, 4), torch.zeros(3, 4))
    assert torch.allclose(other.kl(), torch.full((3, 4), 0.5))


def test_rsample_is_differentiable_and_has_the_right_moments():
    torch.manual_seed(0)
    mean = torch.tensor([[2.0]], requires_grad=True)
    q = DiagonalGaussian(mean, torch.tensor([[math.log(4.0)]]))
    z = q.rsample(100_000)
    assert abs(z.mean().item() - 2.0) < 0.03 and abs(z.std().item() - 2.0) < 0.03
    z.sum().backward()
    assert mean.grad is not None


def test_bernoulli_is_summed_bce():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).sum(1)
    assert torch.allclose(Bernoulli().log_prob(logits, x), expected)


def test_gaussian_matches_torch_normal():
    lik = Gaussian(channels=1)
    with torch.no_grad():
        lik.log_scale.fill_(math.log(0.5))
    mean, x = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    expected = torch.distributions.Normal(mean, 0.5).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(lik.log_prob(mean, x), expected, atol=1e-5)


def test_posterior_sampling_and_kl_stay_fp32_under_bf16_autocast():
    # The encoder's last layer returns bf16 under autocast; in bf16 z would be rounded to 1/128 of its
    # size and each KL term to about 1 %.
    from vaekit.models import build_model

    torch.manual_seed(0)
    model = build_model("seed", image_shape=(1, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.to_mean(torch.randn(2, 16)).dtype == torch.bfloat16  # what the encoder hands over
        terms = model(model.example_input(4))
    assert terms.z.dtype == terms.kl_per_dim.dtype == torch.float32
    q = DiagonalGaussian(torch.ones(1, 1, dtype=torch.bfloat16), torch.zeros(1, 1, dtype=torch.bfloat16))
    assert q.mean.dtype == q.log_var.dtype == torch.float32 and q.kl().dtype == torch.float32


def test_a_posterior_of_vanishing_variance_has_a_finite_density():
    """exp(-120) is 0 in float32: dividing the squared distance by it gave NaN log-densities, and NaN
    importance-weighted scores (a possible cause of the NaN once seen on ADBench's 32_shuttle)."""
    q = DiagonalGaussian(torch.tensor([[0.5, 1.0]]), torch.tensor([[-120.0, 0.0]]))
    assert torch.isfinite(q.log_prob(q.rsample())).all() and torch.isfinite(q.log_prob(q.mean)).all()
    ordinary = DiagonalGaussian(torch.tensor([[0.5]]), torch.tensor([[-1.0]]))
    z = torch.tensor([[0.9]])
    want = torch.distributions.Normal(0.5, torch.exp(torch.tensor(-0.5))).log_prob(torch.tensor(0.9))
    assert torch.allclose(ordinary.log_prob(z), want.view(1), atol=1e-6)


def test_a_missing_value_is_left_out_of_the_likelihood():
    """NaN in x (a missing table cell) drops its term: the log-likelihood is that of the observed cells alone
    (the exact marginal of a factorised likelihood), and its gradients stay finite."""
    from vaekit.distributions import MixedTabular

    torch.manual_seed(0)
    gaussian = Gaussian(4)
    with torch.no_grad():
        gaussian.log_scale.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    params = torch.randn(2, 4, requires_grad=True)
    x = torch.randn(2, 4)
    x_gap = x.clone()
    x_gap[0, 1] = x_gap[1, 3] = float("nan")
    full = gaussian.log_prob(params, x)
    terms = -0.5 * (math.log(2 * math.pi) + ((x - params) / gaussian.log_scale.exp()) ** 2) - gaussian.log_scale
    expected = torch.stack([terms[0, [0, 2, 3]].sum(), terms[1, :3].sum()])
    got = gaussian.log_prob(params, x_gap)
    assert torch.allclose(got, expected, atol=1e-5) and not torch.allclose(got, full)
    got.sum().backward()
    assert torch.isfinite(params.grad).all() and params.grad[0, 1] == 0
    # a categorical column's whole one-hot group missing: its softmax term is left out
    mixed = MixedTabular(1, (3,))
    logits = torch.randn(1, 4)
    row = torch.tensor([[0.5, 0.0, 1.0, 0.0]])
    gap = torch.tensor([[0.5, float("nan"), float("nan"), float("nan")]])
    category = torch.log_softmax(logits[:, 1:], 1)[0, 1]
    assert torch.allclose(mixed.log_prob(logits, row) - mixed.log_prob(logits, gap), category.view(1))

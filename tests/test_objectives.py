import torch

from vaekit.models import build_model
from vaekit.objectives import elbo_terms, iw_log_likelihood, training_loss


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
    model = build_model("seed", image_shape=(1, 8, 8)).eval()
    x = torch.bernoulli(torch.full((8, 1, 8, 8), 0.3))
    bounds = [iw_log_likelihood(model, x, k=k, chunk=64).mean().item() for k in (1, 10, 200)]
    assert bounds[0] < bounds[1] < bounds[2]


def test_free_bits_floor_each_dimension():
    from vaekit.objectives import ELBOTerms

    terms = ELBOTerms(torch.zeros(2), torch.tensor([[0.1, 2.0], [0.1, 2.0]]), torch.zeros(2, 2))
    assert training_loss(terms).item() == torch.tensor(2.1).item()
    assert abs(training_loss(terms, free_bits=0.5).item() - 2.5) < 1e-6
    assert abs(training_loss(terms, kl_weight=0.5).item() - 1.05) < 1e-6

"""Missing values filled in from a trained VAE: the conditional mean E[x_missing | x_observed], estimated by
self-normalised importance sampling with the encoder's posterior as the proposal (MIWAE's imputation,
Mattei & Frellsen 2019, sec. 3.2, eq. 9):

    z_i ~ q(z | x_obs),   w_i ∝ p(x_obs | z_i) p(z_i) / q(z_i | x_obs),   E[x_mis | x_obs] ≈ Σ_i w̃_i E[x_mis | z_i].

A missing cell is NaN in the model's rows: the likelihood leaves it out, so p(x_obs | z) is the exact
marginal of a factorised decoder, and the encoder reads it as 0 (distributions.Gaussian, models.mlp).
Unlike decoding the posterior mean alone, the weights correct for a proposal that saw zeros where the
cells are missing; the mean over many draws is the estimate that minimises the expected squared error.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .distributions import standard_normal_log_prob


def _weighted_samples(model, x: Tensor, k: int, chunk: int):
    """The encoder's posterior for x (B, F) and, `chunk` codes at a time, (z (n, B, D), decoder params (n*B, ...),
    log-weights (n, B)) of k importance samples: log p(x_obs | z) + log p(z) - log q(z | x)."""
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be at least 1, got k={k}, chunk={chunk}")
    posterior = model.encode(x)
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        z = posterior.rsample(n)  # (n, B, D)
        params = model.decode(z.reshape(-1, z.shape[-1]))  # (n*B, ...), sample-major
        x_rep = x.unsqueeze(0).expand(n, *x.shape).reshape(-1, *x.shape[1:])  # (n*B, F)
        log_px_z = model.likelihood.log_prob(params, x_rep).view(n, -1)  # (n, B), observed cells only
        yield z, params, log_px_z.float() + standard_normal_log_prob(z) - posterior.log_prob(z)


@torch.no_grad()
def conditional_mean(model, x: Tensor, k: int = 100, chunk: int = 50) -> Tensor:
    """E[x | x_obs] (B, F) for model rows x (B, F) with NaN where a cell is missing, from k importance
    samples (`chunk` of them through the decoder at a time; the weights are folded in as a running
    log-sum-exp, so nothing of size k is kept). Observed cells come back as given; a categorical column's
    group comes back as its probabilities when it was missing."""
    x = x.float()
    top = torch.full((len(x),), -torch.inf, device=x.device)  # (B,) the largest log-weight so far
    total = torch.zeros(len(x), device=x.device)  # (B,) sum of exp(log_w - top)
    weighted = torch.zeros_like(x)  # (B, F) sum of exp(log_w - top) * E[x | z]
    for z, params, log_w in _weighted_samples(model, x, k, chunk):
        means = model.likelihood.mean(params).float().view(len(z), *x.shape)  # (n, B, F)
        new_top = torch.maximum(top, log_w.max(0).values)  # (B,)
        rescale = torch.exp(top - new_top)  # (B,) 0 at the first chunk (top = -inf)
        w = torch.exp(log_w - new_top)  # (n, B)
        total = total * rescale + w.sum(0)
        weighted = weighted * rescale[:, None] + (w[..., None] * means).sum(0)
        top = new_top
    estimate = weighted / total[:, None]  # (B, F)
    return torch.where(torch.isnan(x), estimate, x)


@torch.no_grad()
def conditional_draws(model, x: Tensor, draws: int, k: int = 100, chunk: int = 50) -> Tensor:
    """`draws` completions (draws, B, F) of model rows x (B, F) with NaN where a cell is missing, each a draw
    from p(x_mis | x_obs): a code resampled from k importance samples by their weights (sampling importance
    resampling, MIWAE's multiple imputation, Mattei & Frellsen 2019, sec. 3.2), then the missing cells drawn
    from the decoder's p(x | z). Observed cells come back as given in every draw; the spread of the draws is the
    uncertainty a single fill hides (for Rubin's rules)."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    x = x.float()
    codes, weights = zip(*[(z, log_w) for z, _, log_w in _weighted_samples(model, x, k, chunk)])
    z, log_w = torch.cat(codes), torch.cat(weights)  # (k, B, D), (k, B)
    pick = torch.distributions.Categorical(logits=log_w.T).sample((draws,))  # (draws, B): a sample index per row
    chosen = z[pick, torch.arange(len(x), device=x.device)]  # (draws, B, D)
    samples = model.likelihood.sample(model.decode(chosen.reshape(-1, z.shape[-1]))).view(draws, *x.shape)
    return torch.where(torch.isnan(x), samples, x)  # (draws, B, F)

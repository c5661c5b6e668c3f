"""The ELBO (Kingma & Welling 2014) and its importance-weighted bound (Burda et al. 2016), and the
count of active latent units (Burda et al. 2016), which training watches and evaluation reports.

The bounds are written against the model interface every vaekit model has:
`encode(x) -> DiagonalGaussian` and `log_likelihood(x, z) -> (B,)`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .distributions import DiagonalGaussian, standard_normal_log_prob

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016: a unit is active when Cov_x(E_q[z_u]) exceeds this


@dataclass
class ELBOTerms:
    """Per-example terms of one ELBO evaluation, in nats."""

    reconstruction: Tensor  # (B,)   -log p(x | z), one z per example
    kl_per_dim: Tensor  # (B, D) KL(q(z|x) || p(z)) per latent dimension
    z: Tensor  # (B, D)

    @property
    def kl(self) -> Tensor:  # (B,)
        return self.kl_per_dim.sum(1)

    @property
    def neg_elbo(self) -> Tensor:  # (B,)
        return self.reconstruction + self.kl


def elbo_terms(model, x: Tensor, posterior: DiagonalGaussian | None = None) -> ELBOTerms:
    """One-sample ELBO terms for a batch x, reparameterised so gradients flow to the encoder.
    `posterior`: q(z|x) to use instead of the encoder's (e.g. from `optimise_posterior`)."""
    posterior = model.encode(x) if posterior is None else posterior
    z = posterior.rsample()  # (B, D)
    return ELBOTerms(-model.log_likelihood(x, z), posterior.kl(), z)


def optimise_posterior(model, x: Tensor, steps: int, lr: float = 0.02,
                       start: DiagonalGaussian | None = None) -> DiagonalGaussian:
    """q(z|x) fitted to each example of x alone: the encoder's mean and log-variance as a start, then
    `steps` Adam steps on that example's one-sample ELBO (stochastic variational inference started
    from the amortised posterior: semi-amortised inference, Kim et al. 2018).

    The ELBO gained over the encoder's posterior measures the amortisation gap (Cremer et al. 2018):
    how far the encoder is from the best Gaussian posterior the decoder admits. The model's
    parameters and their .grad are left untouched; put the model in eval mode first.
    `start`: the encoder's posterior for x when the caller has it already. Returns a DiagonalGaussian
    with (B, D) tensors that carry no graph.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if start is None:
        with torch.no_grad():
            start = model.encode(x)
    mean = start.mean.detach().float().clone().requires_grad_()  # (B, D)
    log_var = start.log_var.detach().float().clone().requires_grad_()  # (B, D)
    optimizer = torch.optim.Adam([mean, log_var], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            # Summed over the batch: the examples share no parameters, so each (mean, log_var) row
            # gets exactly its own example's ELBO gradient.
            loss = elbo_terms(model, x, DiagonalGaussian(mean, log_var)).neg_elbo.sum()
            mean.grad, log_var.grad = torch.autograd.grad(loss, [mean, log_var])  # nothing reaches the model
            optimizer.step()
    return DiagonalGaussian(mean.detach(), log_var.detach())


def training_loss(terms: ELBOTerms, kl_weight: float = 1.0, free_bits: float = 0.0) -> Tensor:
    """Mean over the batch of reconstruction + kl_weight * KL.

    free_bits > 0 floors the batch-averaged KL of each latent dimension at that many nats
    (Kingma et al. 2016, "Improved variational inference with inverse autoregressive flow"),
    so the optimiser gains nothing by collapsing a dimension below the floor.
    """
    kl_dim = terms.kl_per_dim.mean(0)  # (D,)
    if free_bits > 0:
        kl_dim = kl_dim.clamp(min=free_bits)
    return terms.reconstruction.mean() + kl_weight * kl_dim.sum()


@torch.no_grad()
def iw_log_likelihood(model, x: Tensor, k: int, chunk: int = 100,
                      posterior: DiagonalGaussian | None = None) -> Tensor:
    """Importance-weighted lower bound on log p(x) with k samples (Burda et al. 2016, eq. 8).

    log (1/k) sum_i p(x, z_i) / q(z_i | x),  z_i ~ q(z | x). Returns (B,); k=1 is the ELBO in
    expectation. x is encoded once; the decoder sees `chunk` samples per example at a time, so one
    pass holds chunk * B decoded examples whatever k is, and the log-weights are folded into a
    running log-sum-exp, so nothing of size k is kept either. `posterior`: q(z|x) when the caller
    has already encoded x (the proposal; it must be x's).
    """
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be at least 1, got k={k}, chunk={chunk}")
    if posterior is None:
        posterior = model.encode(x)
    total = None  # (B,) log sum_i w_i over the samples so far
    x_rep = None
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        z = posterior.rsample(n)  # (n, B, D)
        if x_rep is None or len(x_rep) != n * len(x):  # every chunk but a shorter last one reuses it
            x_rep = x.unsqueeze(0).expand(n, *x.shape).reshape(-1, *x.shape[1:])  # (n*B, ...), sample-major
        log_px_z = model.log_likelihood(x_rep, z.reshape(-1, z.shape[-1])).view(n, -1)  # (n, B)
        log_w = log_px_z.float() + standard_normal_log_prob(z) - posterior.log_prob(z)  # (n, B)
        part = torch.logsumexp(log_w, 0)  # (B,)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(k)


def active_units(mean: Tensor, threshold: float = ACTIVE_THRESHOLD) -> tuple[int, Tensor]:
    """(count, per-dimension variance) of the posterior means over the data (Burda et al. 2016).

    mean: (N, D) E_q[z | x_n]. A dimension is active when Cov_x(E_q[z_u]) > threshold.
    """
    variance = mean.double().var(0, unbiased=True) if len(mean) > 1 else torch.zeros(mean.shape[1])  # (D,)
    return int((variance > threshold).sum()), variance.float()

"""Tabular VAE: a multilayer perceptron encoder and decoder over standardised numeric features.

Encoder: Linear(F, h1) -> ReLU -> ... -> Linear(hn, h_last) -> ReLU -> (z_mean, z_log_var).
Decoder: the mirror, Linear(D, h_last) -> ... -> Linear(h1, F): the Gaussian means.
Likelihood: N(x; mean, sigma_f^2) with one learned log-sigma per feature (Kingma & Welling 2014,
appendix C.2 uses a Gaussian decoder for real-valued data); features arrive standardised
(tabular.py), so sigma starts at 1 = "no better than the feature's spread".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..distributions import DiagonalGaussian, Gaussian
from ..errors import VaekitError
from . import register
from .base import VAE


@dataclass(frozen=True)
class MLPVAEConfig:
    n_features: int = 8  # F, decided by the data
    latent_dim: int = 2
    hidden: tuple[int, ...] = (64, 64)  # encoder widths; the decoder uses them reversed

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))  # JSON gives lists
        if not 1 <= self.n_features <= 1_000_000:
            raise VaekitError(f"n_features must be in 1..1000000, got {self.n_features}")
        if not 1 <= self.latent_dim <= 4096:
            raise VaekitError(f"latent_dim must be in 1..4096, got {self.latent_dim}")
        if not self.hidden or any(not 1 <= h <= 65536 for h in self.hidden):
            raise VaekitError(f"hidden must be one or more widths in 1..65536, got {self.hidden}")


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Linear + ReLU for each consecutive pair of sizes."""
    layers: list[nn.Module] = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o), nn.ReLU()]
    return nn.Sequential(*layers)


@register("mlp")
class MLPVAE(VAE):
    Config = MLPVAEConfig
    kind = "tabular"

    def __init__(self, config: MLPVAEConfig):
        super().__init__(config)
        f, hidden = config.n_features, config.hidden
        self.encoder = _mlp((f, *hidden))
        self.to_mean = nn.Linear(hidden[-1], config.latent_dim)
        self.to_log_var = nn.Linear(hidden[-1], config.latent_dim)
        self.decoder = nn.Sequential(_mlp((config.latent_dim, *hidden[::-1])), nn.Linear(hidden[0], f))
        self.likelihood = Gaussian(f)  # one learned log-scale per feature

    def encode(self, x: Tensor) -> DiagonalGaussian:
        h = self.encoder(x.float())  # (B, h_last)
        return DiagonalGaussian(self.to_mean(h), self.to_log_var(h))  # (B, D) each

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # (B, F): the Gaussian means

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.config.n_features, device=self.device)

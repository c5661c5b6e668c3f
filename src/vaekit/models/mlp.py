"""Fully connected VAEs. "mlp" (tabular): an MLP encoder and decoder over standardised numeric features.

Encoder: Linear(F, h1) -> ReLU -> ... -> Linear(hn, h_last) -> ReLU -> (z_mean, z_log_var).
Decoder: the mirror, Linear(D, h_last) -> ... -> Linear(h1, F): the Gaussian means.
Likelihood: N(x; mean, sigma_f^2) with one learned log-sigma per feature (Kingma & Welling 2014,
appendix C.2 uses a Gaussian decoder for real-valued data); features arrive standardised
(tabular.py), so sigma starts at 1 = "no better than the feature's spread". Categorical columns arrive
one-hot after the numeric ones, each under a softmax (distributions.MixedTabular).
"image-mlp": the same network on flattened pixels with the image likelihoods (Kingma & Welling 2014).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..distributions import LIKELIHOODS, DiagonalGaussian, Gaussian, MixedTabular
from ..errors import VaekitError
from . import register
from .base import VAE


@dataclass(frozen=True)
class MLPVAEConfig:
    n_features: int = 8  # F, decided by the data
    latent_dim: int = 2  # a tabular run's data set it to half its columns (at least 2) unless it is given
    hidden: tuple[int, ...] = (64, 64)  # encoder widths; the decoder uses them reversed
    # Sizes of the one-hot groups of categorical columns, which are the last sum(categories) of the F features
    # (decided by the data; none: every feature numeric, the Gaussian likelihood).
    categories: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))  # JSON gives lists
        object.__setattr__(self, "categories", tuple(self.categories))
        if any(not 2 <= k <= 100_000 for k in self.categories) or sum(self.categories) > self.n_features:
            raise VaekitError(f"categories must be group sizes of 2..100000 within the {self.n_features} features, "
                              f"got {self.categories}")
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
        # one learned log-scale per numeric feature; a softmax per categorical column
        self.likelihood = MixedTabular(f - sum(config.categories), config.categories) if config.categories \
            else Gaussian(f)

    def encode(self, x: Tensor) -> DiagonalGaussian:
        # A missing cell (NaN) reads as 0: the training mean of a standardised feature, no category of a one-hot
        # group (the HI-VAE's zero-filled encoder input, Nazabal et al. 2020).
        h = self.encoder(x.float().nan_to_num(0.0))  # (B, h_last)
        return DiagonalGaussian(self.to_mean(h), self.to_log_var(h))  # (B, D) each

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # (B, F): the Gaussian means

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.config.n_features, device=self.device)


@dataclass(frozen=True)
class ImageMLPVAEConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W), decided by the data
    latent_dim: int = 2
    hidden: tuple[int, ...] = (500,)  # Kingma & Welling 2014's MNIST model: one layer of 500 units
    likelihood: str = "bernoulli"

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        MLPVAEConfig(math.prod(self.image_shape), self.latent_dim, self.hidden)  # the same checks
        if self.likelihood not in ("bernoulli", "gaussian"):  # one decoder output per pixel
            raise VaekitError(f"image-mlp's likelihood must be 'bernoulli' or 'gaussian', got '{self.likelihood}'")


@register("image-mlp")
class ImageMLPVAE(MLPVAE):
    """The textbook fully connected VAE on flattened pixels (Kingma & Welling 2014, sec. 5): a few
    times cheaper to encode than the conv models, for embedding many images fast."""

    Config = ImageMLPVAEConfig
    kind = "image"

    def __init__(self, config: ImageMLPVAEConfig):
        super().__init__(MLPVAEConfig(math.prod(config.image_shape), config.latent_dim, config.hidden))
        self.config = config
        self.likelihood = LIKELIHOODS[config.likelihood](config.image_shape[0])

    def encode(self, x: Tensor) -> DiagonalGaussian:
        return super().encode(x.flatten(1))  # (B, C*H*W) -> (B, D)

    def decode(self, z: Tensor) -> Tensor:
        return super().decode(z).view(-1, *self.config.image_shape)  # (B, C, H, W) logits / means

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.rand(batch_size, *self.config.image_shape, device=self.device)

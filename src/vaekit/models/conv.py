"""Convolutional image VAE: the design document's architecture, generalised to C x H x W.

Encoder: Conv(c1, 3, s2) -> ... -> Conv(cn, 3, s2) -> Dense(hidden) -> (z_mean, z_log_var).
Decoder: Dense(cn * h * w) -> ConvT(cn, 3, s2) -> ... -> ConvT(c1, 3, s2) -> ConvT(C, 3) -> crop.
With channels (32, 64), hidden 16 and latent 2 this is exactly the document's Keras model
(Keras 'same' padding == PyTorch padding 1 + output_padding 1 for the stride-2 transposes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributions import LIKELIHOODS, DiagonalGaussian
from ..errors import VaekitError
from ..kernels.fused_conv import conv_bias_relu, fused_dtype, memory_format
from . import register
from .base import VAE, keras_init


@dataclass(frozen=True)
class ConvVAEConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    latent_dim: int = 2
    channels: tuple[int, ...] = (32, 64)  # one stride-2 conv block per entry
    hidden_dim: int = 16
    batch_norm: bool = False  # BN after each conv (the document suggests it)
    likelihood: str = "bernoulli"  # or "gaussian"; "logistic" / "logistic-mix" for 8-bit images
    init: str = "torch"  # "keras": Keras' default initialisers (the document's model, as its code starts)

    def __post_init__(self):
        # JSON round-trips tuples as lists; keep the frozen config hashable and comparable.
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        object.__setattr__(self, "channels", tuple(self.channels))
        check_config(self)


def check_config(config: ConvVAEConfig) -> None:
    """Refuse values that cannot build a model, with one clear message (configs come from users)."""
    c, h, w = config.image_shape
    if not (1 <= c <= 4 and 1 <= h <= 4096 and 1 <= w <= 4096):
        raise VaekitError(f"image_shape must be (C, H, W) with 1-4 channels, got {config.image_shape}")
    if not 1 <= config.latent_dim <= 4096:
        raise VaekitError(f"latent_dim must be in 1..4096, got {config.latent_dim}")
    if not config.channels or any(not 1 <= ch <= 4096 for ch in config.channels):
        raise VaekitError(f"channels must be 1..4096 each, got {config.channels}")
    if not 1 <= config.hidden_dim <= 65536:
        raise VaekitError(f"hidden_dim must be in 1..65536, got {config.hidden_dim}")
    if config.init not in ("torch", "keras"):
        raise VaekitError(f"init must be 'torch' or 'keras', got '{config.init}'")
    if config.likelihood not in LIKELIHOODS:
        raise VaekitError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got '{config.likelihood}'")


class ConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose bias gradient is a plain sum: same parameters, same result.

    Why: on CPU, oneDNN's bf16 transposed-convolution backward takes ~4x longer when it also
    computes the bias gradient (the seed model's 64->32 layer: 12.9 ms vs 3.5 ms on one core);
    autograd's plain sum for the bias costs 0.1 ms. On CPU the forward adds the bias inside the
    convolution (kernels/fused_conv.py), elsewhere as a separate add. The class keeps
    nn.ConvTranspose2d's name so summaries and checkpoints are unchanged.
    """

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        dtype = fused_dtype(self, x) if output_size is None else None
        if dtype is not None:
            return conv_bias_relu(self, x, relu=False, dtype=dtype)
        output_padding = self._output_padding(x, output_size, self.stride, self.padding,
                                              self.kernel_size, 2, self.dilation)
        y = F.conv_transpose2d(x, self.weight, None, self.stride, self.padding, output_padding,
                               self.groups, self.dilation)  # (B, C_out, H_out, W_out)
        if self.bias is None:
            return y
        # In y's dtype: an fp32 bias would promote autocast's bf16 activations to fp32.
        return y + self.bias.to(y.dtype).view(-1, 1, 1)


class ConvBlock(nn.Sequential):
    """conv -> [BatchNorm] -> ReLU. Without batch norm, on CPU, the three run as one oneDNN call
    (kernels/fused_conv.py: same outputs, 1.02-1.07x the seed model's training img/s); the
    Sequential keeps the layers' names, so checkpoints and summaries are unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        if len(self) == 2 and isinstance(self[1], nn.ReLU):  # conv, ReLU (and no batch norm)
            dtype = fused_dtype(self[0], x, self[0], self[1])
            if dtype is not None:
                return conv_bias_relu(self[0], x, relu=True, dtype=dtype)
        return super().forward(x)


def _block(conv: nn.Module, channels: int, batch_norm: bool) -> ConvBlock:
    layers = [conv] + ([nn.BatchNorm2d(channels)] if batch_norm else []) + [nn.ReLU()]
    return ConvBlock(*layers)


@register("seed", init="keras")
@register("conv", hidden_dim=256, batch_norm=True)
class ConvVAE(VAE):
    Config = ConvVAEConfig
    kind = "image"

    def __init__(self, config: ConvVAEConfig):
        super().__init__(config)
        c, h, w = config.image_shape
        chans = config.channels
        n_down = len(chans)
        # Spatial size after n stride-2 convs with padding 1: ceil(s / 2^n).
        self.bottom = (math.ceil(h / 2**n_down), math.ceil(w / 2**n_down))
        flat = chans[-1] * self.bottom[0] * self.bottom[1]

        ins = (c,) + chans[:-1]
        self.encoder = nn.Sequential(
            *[_block(nn.Conv2d(i, o, 3, 2, 1), o, config.batch_norm) for i, o in zip(ins, chans)],
            nn.Flatten(),
            nn.Linear(flat, config.hidden_dim),
            nn.ReLU(),
        )
        self.to_mean = nn.Linear(config.hidden_dim, config.latent_dim)
        self.to_log_var = nn.Linear(config.hidden_dim, config.latent_dim)

        self.likelihood = LIKELIHOODS[config.likelihood](c)
        self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, flat), nn.ReLU())
        ups = chans[::-1]  # the document: ConvT(64) then ConvT(32)
        up_ins = (chans[-1],) + ups[:-1]
        self.decoder = nn.Sequential(
            *[_block(ConvTranspose2d(i, o, 3, 2, 1, output_padding=1), o, config.batch_norm)
              for i, o in zip(up_ins, ups)],
            # logits / means (and, for the discretised logistic, scales and mixture weights)
            ConvTranspose2d(ups[-1], c * self.likelihood.params_per_channel, 3, 1, 1),
        )
        if config.init == "keras":
            keras_init(self)

    def encode(self, x: Tensor) -> DiagonalGaussian:
        h = self.encoder(x)  # (B, hidden)
        return DiagonalGaussian(self.to_mean(h), self.to_log_var(h))

    def decode(self, z: Tensor) -> Tensor:
        c, h, w = self.config.image_shape
        hidden = self.from_latent(z).view(-1, self.config.channels[-1], *self.bottom)  # (B, C, h, w)
        # Give the first transposed conv the layout its weight has (channels_last after the
        # trainer's model.to(memory_format=...)): mixed layouts cost oneDNN a reorder each way.
        hidden = hidden.contiguous(memory_format=memory_format(self.decoder[0][0].weight))
        out = self.decoder(hidden)  # (B, C * params_per_channel, 2^n * bottom_h, 2^n * bottom_w)
        return out[:, :, :h, :w]

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.rand(batch_size, *self.config.image_shape, device=self.device)

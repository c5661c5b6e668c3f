"""Conv VAE with an autoregressive pixel decoder (PixelVAE, Gulrajani et al. 2017, ICLR).

The conv model's encoder and upsampling decoder, but the decoder's last layer gives `pixel_channels`
feature maps instead of the pixels' Bernoulli logits. A small PixelCNN (van den Oord et al. 2016)
then models each pixel given those features and the pixels before it in raster order:

    p(x | z) = prod_i p(x_i | x_<i, z)

A masked 7x7 convolution (type A: the pixel itself hidden) reads the image, the decoder's features
are added, `pixel_layers` residual masked 3x3 convolutions (type B) follow, and a 1x1 convolution gives
the logits. The channels of one pixel are conditionally independent given what came before, so any
C works. log p(x | z) is one parallel pass (teacher forcing), so training, the ELBO and the
importance-weighted bound cost about as much as the conv model; the local detail the
pixels share no longer has to pass through z, which is where the conv model's likelihood stalls.
Drawing an image needs one pass per pixel; `decode_mean` returns, for every pixel, its Bernoulli
mean given z and the pixels drawn before it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import VaekitError
from . import register
from .conv import ConvTranspose2d, ConvVAE, ConvVAEConfig


@dataclass(frozen=True)
class PixelVAEConfig(ConvVAEConfig):
    latent_dim: int = 32
    hidden_dim: int = 256
    batch_norm: bool = True
    pixel_channels: int = 32  # width of the autoregressive layers
    pixel_layers: int = 3  # residual masked 3x3 convolutions after the 7x7 input layer

    def __post_init__(self):
        super().__post_init__()
        if self.likelihood != "bernoulli":
            raise VaekitError("the pixel decoder models binary pixels: likelihood must be 'bernoulli'")
        if not 1 <= self.pixel_channels <= 1024 or not 0 <= self.pixel_layers <= 64:
            raise VaekitError(f"pixel_channels must be in 1..1024 and pixel_layers in 0..64, got "
                              f"{self.pixel_channels} and {self.pixel_layers}")


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only pixels before the centre in raster order (type A), or those
    and the centre (type B). Same-size output; the mask is not a parameter and is not saved."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, include_centre: bool):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.zeros(kernel_size, kernel_size)
        c = kernel_size // 2
        mask[:c] = 1  # rows above
        mask[c, :c + int(include_centre)] = 1  # left of the centre (and the centre for type B)
        self.register_buffer("mask", mask.view(1, 1, kernel_size, kernel_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias, padding=self.padding)


@register("conv-pixel")
class PixelVAE(ConvVAE):
    Config = PixelVAEConfig
    kind = "image"

    def __init__(self, config: PixelVAEConfig):
        super().__init__(config)
        c = config.image_shape[0]
        p = config.pixel_channels
        # The upsampling decoder ends in p feature maps instead of c logit maps.
        self.decoder[-1] = ConvTranspose2d(config.channels[0], p, 3, 1, 1)
        self.pixel_in = MaskedConv2d(c, p, 7, include_centre=False)
        self.pixel_layers = nn.ModuleList(MaskedConv2d(p, p, 3, include_centre=True)
                                          for _ in range(config.pixel_layers))
        self.pixel_out = nn.Conv2d(p, c, 1)
        self.condition_out = nn.Conv2d(p, c, 1)  # the features also reach the logits directly
        # Vertical reach of the stack: how many rows above a pixel its logits can depend on.
        self.reach = 3 + config.pixel_layers

    def pixel_logits(self, x: Tensor, features: Tensor) -> Tensor:
        """Bernoulli logits (B, C, H, W) of every pixel given the pixels before it in x and the
        decoder's features (B, P, H, W)."""
        h = self.pixel_in(2 * x - 1) + features  # inputs centred: 0/1 -> -1/+1
        for layer in self.pixel_layers:
            h = h + layer(F.relu(h))
        return self.pixel_out(F.relu(h)) + self.condition_out(features)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) per example (B,), all pixels in one pass given x (teacher forcing)."""
        return self.likelihood.log_prob(self.pixel_logits(x, self.decode(z)), x)

    @torch.no_grad()
    def draw(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Draw x pixel by pixel from p(x | z) (torch's global RNG); returns x and each pixel's
        Bernoulli mean given z and the pixels drawn before it, both (B, C, H, W)."""
        features = self.decode(z)  # (B, P, H, W)
        b, _, height, width = features.shape
        c = self.config.image_shape[0]
        x = torch.zeros(b, c, height, width, device=features.device, dtype=features.dtype)
        means = torch.zeros_like(x)
        for i in range(height):
            # Row i's logits depend on rows i - reach .. i only: run the stack on that band.
            top = max(0, i - self.reach)
            band_x, band_f = x[:, :, top:i + 1], features[:, :, top:i + 1]
            for j in range(width):
                p = torch.sigmoid(self.pixel_logits(band_x, band_f)[:, :, -1, j].float())  # (B, C)
                means[:, :, i, j] = p.to(means.dtype)
                band_x[:, :, -1, j] = torch.bernoulli(p).to(x.dtype)  # band_x is a view of x
        return x, means

    @torch.no_grad()
    def decode_mean(self, z: Tensor) -> Tensor:
        """Each pixel's Bernoulli mean given z and the pixels drawn before it (see `draw`)."""
        return self.draw(z)[1]

"""Conv VAE with an autoregressive pixel decoder (PixelVAE, Gulrajani et al. 2017, ICLR).

The conv model's encoder and upsampling decoder, but the decoder's last layer gives `pixel_channels`
feature maps instead of the pixels' Bernoulli logits. A small PixelCNN (van den Oord et al. 2016)
then models each pixel given those features and the pixels before it in raster order:

    p(x | z) = prod_i p(x_i | x_<i, z)

A masked 7x7 convolution (type A: the pixel itself hidden) reads the image, the decoder's features
are added, `pixel_layers` residual masked 3x3 convolutions (type B) follow, and a 1x1 convolution gives
the likelihood's parameters: a Bernoulli logit per channel for binary images, or a discretised logistic
mixture over the 256 levels (PixelCNN++, Salimans et al. 2017) for 8-bit images, as Bit-Swap and
BB-ANS code them. The channels of one pixel are conditionally independent given what came before, so any
C works. log p(x | z) is one parallel pass (teacher forcing), so training, the ELBO and the
importance-weighted bound cost about as much as the conv model; the local detail the
pixels share no longer has to pass through z, which is where the conv model's likelihood stalls.
Drawing an image needs one pass per pixel; `decode_mean` returns, for every pixel, its mean given z
and the pixels drawn before it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import VaekitError
from . import register
from .conv import ConvTranspose2d, ConvVAE, ConvVAEConfig

PIXEL_LIKELIHOODS = ("bernoulli", "logistic", "logistic-mix")  # discrete levels: a pixel can be drawn and coded


@dataclass(frozen=True)
class PixelVAEConfig(ConvVAEConfig):
    latent_dim: int = 32
    hidden_dim: int = 256
    batch_norm: bool = True
    pixel_channels: int = 32  # width of the autoregressive layers
    pixel_layers: int = 3  # residual masked 3x3 convolutions after the 7x7 input layer

    def __post_init__(self):
        super().__post_init__()
        if self.likelihood not in PIXEL_LIKELIHOODS:
            raise VaekitError("the pixel decoder models discrete pixels: likelihood must be 'bernoulli' (binary "
                              f"images) or 'logistic' / 'logistic-mix' (8-bit images), got '{self.likelihood}'")
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
        out = c * self.likelihood.params_per_channel  # Bernoulli: a logit per channel; mixture: 3K per channel
        # The upsampling decoder ends in p feature maps instead of the likelihood's parameter maps.
        self.decoder[-1] = ConvTranspose2d(config.channels[0], p, 3, 1, 1)
        self.pixel_in = MaskedConv2d(c, p, 7, include_centre=False)
        self.pixel_layers = nn.ModuleList(MaskedConv2d(p, p, 3, include_centre=True)
                                          for _ in range(config.pixel_layers))
        self.pixel_out = nn.Conv2d(p, out, 1)
        self.condition_out = nn.Conv2d(p, out, 1)  # the features also reach the parameters directly

    def pixel_logits(self, x: Tensor, features: Tensor) -> Tensor:
        """The likelihood's parameters (B, C * params_per_channel, H, W) of every pixel (Bernoulli logits,
        or the mixture's logits, means and log-scales) given the pixels before it in x (in [0, 1]) and
        the decoder's features (B, P, H, W)."""
        h = self.pixel_in(2 * x - 1) + features  # inputs centred: 0/1 -> -1/+1
        for layer in self.pixel_layers:
            h = h + layer(F.relu(h))
        return self.pixel_out(F.relu(h)) + self.condition_out(features)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) per example (B,), all pixels in one pass given x (teacher forcing)."""
        return self.likelihood.log_prob(self.pixel_logits(x, self.decode(z)), x)

    @torch.no_grad()
    def walk(self, features: Tensor, next_pixel) -> Tensor:
        """The decoder walked pixel by pixel in raster order: next_pixel(i, j, params) gets the likelihood's
        parameters (B, C * params_per_channel) of pixel (i, j) (as pixel_logits gives them) given the
        decoder's features (B, P, H, W) and the pixels before it, and returns that pixel's values (B, C)
        in [0, 1]. Returns the images (B, C, H, W).

        Each layer's activation at (i, j) is computed once, when the walk reaches (i, j), from the
        activations already cached at the positions its masked kernel reads (the rows above and the
        columns to the left: all earlier in raster order), as fast PixelCNN generation caches them
        (Ramachandran et al. 2017): one small matrix product per layer and pixel, instead of running
        the stack over a window of the image for every pixel, which cost about 90 times the work.
        The sums run in another order than the convolutions' (equal to about 1e-6); compression walks
        the same way on both sides, so its probabilities match to the bit."""
        b, _, height, width = features.shape
        c = self.config.image_shape[0]
        out = self.pixel_out.out_channels
        p = self.config.pixel_channels
        a = self.pixel_in.kernel_size[0] // 2  # 3: the 7x7 input layer reads rows i-3..i

        def causal(conv, rows):  # the kernel's rows that reach the pixel, mask applied: (rows*k*in, out)
            kept = (conv.weight * conv.mask)[:, :, :rows].permute(0, 2, 3, 1)  # (out, rows, k, in)
            return kept.reshape(conv.out_channels, -1).T.contiguous()

        first = causal(self.pixel_in, a + 1)  # ((a+1) * (2a+1) * C, P)
        hidden = [causal(layer, 2) for layer in self.pixel_layers]  # (2 * 3 * P, P) each
        out_w, cond_w = self.pixel_out.weight.view(out, p).T, self.condition_out.weight.view(out, p).T  # (P, out)
        bias = self.pixel_out.bias + self.condition_out.bias
        # Zero-padded caches, as the convolutions pad, channels last (a patch is then a few contiguous
        # runs: copying channel-first patches cost 4 times more): the centred input 2x - 1 (0 where not
        # drawn yet: the masks never read those) and relu(h) entering each 3x3 layer.
        x_in = features.new_zeros(b, height + a, width + 2 * a, c)
        cache = [features.new_zeros(b, height + 1, width + 2, p) for _ in self.pixel_layers]
        features = features.permute(0, 2, 3, 1).contiguous()  # (B, H, W, P)
        x = features.new_zeros(b, c, height, width)
        for i in range(height):
            for j in range(width):
                f = features[:, i, j]  # (B, P)
                h = torch.addmm(self.pixel_in.bias + f, x_in[:, i:i + a + 1, j:j + 2 * a + 1].reshape(b, -1), first)
                for layer, weight, cached in zip(self.pixel_layers, hidden, cache):
                    cached[:, i + 1, j + 1] = F.relu(h)
                    h = h + torch.addmm(layer.bias, cached[:, i:i + 2, j:j + 3].reshape(b, -1), weight)  # (B, P)
                params = torch.addmm(bias, F.relu(h), out_w) + f @ cond_w  # (B, C * params_per_channel)
                pixel = next_pixel(i, j, params).to(x.dtype)  # (B, C)
                x[:, :, i, j] = pixel
                x_in[:, i + a, j + a] = 2 * pixel - 1
        return x

    @torch.no_grad()
    def draw(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Draw x pixel by pixel from p(x | z) (torch's global RNG); returns x and each pixel's
        mean given z and the pixels drawn before it, both (B, C, H, W)."""
        features = self.decode(z)  # (B, P, H, W)
        b = features.shape[0]
        means = torch.zeros(b, self.config.image_shape[0], *features.shape[2:],
                            device=features.device, dtype=features.dtype)

        def next_pixel(i, j, params):
            params = params.float().view(b, -1, 1, 1)  # one pixel as a 1x1 image
            means[:, :, i, j] = self.likelihood.mean(params)[:, :, 0, 0].to(means.dtype)
            return self.likelihood.sample(params)[:, :, 0, 0]

        return self.walk(features, next_pixel), means

    @torch.no_grad()
    def decode_mean(self, z: Tensor) -> Tensor:
        """Each pixel's Bernoulli mean given z and the pixels drawn before it (see `draw`)."""
        return self.draw(z)[1]

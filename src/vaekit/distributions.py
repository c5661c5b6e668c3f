"""The Gaussian posterior and the observation likelihoods shared by every vaekit model.

Every likelihood returns log p(x | z) *summed over the dimensions of one example*, shape (B,),
so losses are per example in nats and compare with the literature.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


@dataclass
class DiagonalGaussian:
    """q(z | x) = N(mean, diag(exp(log_var))). mean, log_var: (B, D)."""

    mean: Tensor
    log_var: Tensor

    def __post_init__(self):
        # Under bf16/fp16 autocast the encoder's last layer returns half-precision codes; sampling and
        # the KL are kept in fp32 (a few (B, D) elements): in bf16, z would be rounded to 1/128 of
        # its size (a sizeable share of a posterior's std) and each KL term to about 1 %.
        if self.mean.dtype in (torch.bfloat16, torch.float16):
            self.mean = self.mean.float()
        if self.log_var.dtype in (torch.bfloat16, torch.float16):
            self.log_var = self.log_var.float()

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.log_var)

    def rsample(self, n: int | None = None) -> Tensor:
        """Reparameterised draw z = mean + std * eps (Kingma & Welling 2014, eq. 10).

        Returns (B, D), or (n, B, D) when n is given.
        """
        shape = self.mean.shape if n is None else (n, *self.mean.shape)
        eps = torch.randn(shape, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) per dimension, (B, D): analytic (Kingma & Welling 2014, appendix B)."""
        return -0.5 * (1 + self.log_var - self.mean.pow(2) - self.log_var.exp())

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z | x) summed over D. z: (..., B, D) -> (..., B).

        The standardised distance is (z - mean) * exp(-log_var / 2), not (z - mean)^2 / exp(log_var): an
        encoder sure enough to give log_var below about -104 has exp(log_var) = 0 in float32, and the
        division made 0 / 0 = NaN. Tabular encoders go that way: on ADBench's 32_shuttle log_var reaches
        -66, and an importance-weighted score of NaN was once seen there (issue 26; not reproduced since)."""
        standardised = (z - self.mean) * torch.exp(-0.5 * self.log_var)
        return (-0.5 * (LOG_2PI + self.log_var + standardised.pow(2))).sum(-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension. (..., D) -> (...)."""
    return (-0.5 * (LOG_2PI + z.pow(2))).sum(-1)


class Likelihood(nn.Module):
    """p(x | z) given the decoder's output `params` (same shape as x for images/tabular, or
    `params_per_channel` maps per channel of x)."""

    params_per_channel = 1

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:  # (B, ...) -> (B,)
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """E[x | z], in data space (what a reconstruction or a sample shows)."""
        raise NotImplementedError

    def sample(self, params: Tensor) -> Tensor:
        """A draw of x from p(x | z) (torch's global RNG), in data space."""
        raise NotImplementedError


class Bernoulli(Likelihood):
    """Pixels in [0, 1] as Bernoulli probabilities; params are logits.

    Summed binary cross-entropy, as the design document trains; logits rather than a sigmoid
    output keep it exact where a clipped sigmoid would saturate.
    """

    def __init__(self, channels: int = 1):
        super().__init__()  # no parameters: the decoder's logits are the whole distribution

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(params.float(), x.float(), reduction="none")
        return -bce.flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params.float())

    def sample(self, params: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(params.float()))


class Gaussian(Likelihood):
    """Continuous data: N(x; params, sigma^2) with one learned log-sigma per channel.

    `channels` is dim 1 of x (image channels, or 1 for tabular features sharing a scale).
    NaN in x marks a missing value (tables): its term is left out, which is its exact marginal under a
    factorised likelihood (the HI-VAE's and MIWAE's masked likelihood: Nazabal et al. 2020, Mattei &
    Frellsen 2019).
    """

    def __init__(self, channels: int = 1, min_log_scale: float = -7.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.min_log_scale = min_log_scale

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        log_scale = self.log_scale.clamp(min=self.min_log_scale).view(shape)  # (1, C, 1, 1)
        x, params = x.float(), params.float()
        missing = torch.isnan(x)  # (B, ...)
        z = (torch.where(missing, params, x) - params) * torch.exp(-log_scale)
        terms = -0.5 * (LOG_2PI + z.pow(2)) - log_scale  # (B, ...)
        return terms.masked_fill(missing, 0.0).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return params.float()

    def sample(self, params: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (params.dim() - 2)
        scale = torch.exp(self.log_scale.clamp(min=self.min_log_scale)).view(shape)  # (1, C, 1, 1) or (1, F)
        return params.float() + scale * torch.randn_like(params.float())


class DiscretizedLogistic(Likelihood):
    """8-bit pixels: a mixture of `components` logistics per pixel, discretised to the 256 levels
    k/255 (Salimans et al. 2017, PixelCNN++, eq. 2; Kingma et al. 2019, Bit-Swap). Level k takes the
    mass of [k/255 - 1/510, k/255 + 1/510]; levels 0 and 255 take the tails. params:
    (B, C * 3 * components, H, W) = per channel, the mixture logits, means and log-scales.
    With one component the logit maps are unused (a single logistic).
    """

    LEVELS = 256

    def __init__(self, channels: int = 1, components: int = 1, min_log_scale: float = -7.0):
        super().__init__()
        self.components = components
        self.params_per_channel = 3 * components
        self.min_log_scale = min_log_scale

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, C*3K, H, W) -> mixture log-weights, means, log-scales, each (B, C, K, H, W), in fp32."""
        b, _, h, w = params.shape
        p = params.float().reshape(b, -1, 3, self.components, h, w)  # (B, C, 3, K, H, W)
        log_weights = F.log_softmax(p[:, :, 0], dim=2)
        return log_weights, p[:, :, 1], p[:, :, 2].clamp(min=self.min_log_scale)

    def level_log_probs(self, params: Tensor, levels: Tensor) -> Tensor:
        """log P(level) for integer levels (B, C, H, W) in 0..255 -> (B, C, H, W)."""
        log_weights, means, log_scales = self.split(params)
        k = levels.float().unsqueeze(2)  # (B, C, 1, H, W)
        half = 0.5 / (self.LEVELS - 1)
        centred = k / (self.LEVELS - 1) - means
        inv_scale = torch.exp(-log_scales)
        upper = inv_scale * (centred + half)
        lower = inv_scale * (centred - half)
        log_cdf_upper = F.logsigmoid(upper)  # level 0 takes (-inf, upper]
        log_sf_lower = F.logsigmoid(-lower)  # level 255 takes [lower, inf)
        mid = _log_diff_sigmoid(upper, lower)
        top = k == self.LEVELS - 1
        bottom = k == 0
        per_component = torch.where(bottom, log_cdf_upper, torch.where(top, log_sf_lower, mid))
        return torch.logsumexp(log_weights + per_component, dim=2)  # (B, C, H, W)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        levels = torch.round(x.float() * (self.LEVELS - 1))  # x in [0, 1] holds k / 255
        return self.level_log_probs(params, levels).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        """E[x | z] of the continuous mixture, clipped to [0, 1]."""
        log_weights, means, _ = self.split(params)
        return (log_weights.exp() * means).sum(2).clamp(0, 1)

    def sample(self, params: Tensor) -> Tensor:
        """A level k/255 (B, C, H, W): a component by its weight (Gumbel-max), a logistic draw from it by
        the inverse CDF, rounded to the nearest level (which is the discretisation's bin)."""
        log_weights, means, log_scales = self.split(params)  # (B, C, K, H, W) each
        gumbel = -torch.log(-torch.log(torch.rand_like(log_weights).clamp(1e-10, 1 - 1e-7)))
        pick = (log_weights + gumbel).argmax(2, keepdim=True)  # (B, C, 1, H, W)
        mean, log_scale = means.gather(2, pick)[:, :, 0], log_scales.gather(2, pick)[:, :, 0]
        u = torch.rand_like(mean).clamp(1e-5, 1 - 1e-5)
        x = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        return torch.round(x.clamp(0, 1) * (self.LEVELS - 1)) / (self.LEVELS - 1)


def _log_diff_sigmoid(upper: Tensor, lower: Tensor) -> Tensor:
    """log(sigmoid(upper) - sigmoid(lower)) for upper > lower, stable in both tails, from
    sigmoid(u) - sigmoid(l) = e^u (1 - e^(l - u)) / ((1 + e^u)(1 + e^l))."""
    return upper + torch.log((-torch.expm1(lower - upper)).clamp(min=1e-30)) - F.softplus(upper) - F.softplus(lower)


class MixtureLogistic(DiscretizedLogistic):
    """DiscretizedLogistic with 5 mixture components per pixel (PixelCNN++ uses 10 for CIFAR's RGB)."""

    def __init__(self, channels: int = 1):
        super().__init__(channels, components=5)


class MixedTabular(Likelihood):
    """Table rows of numeric and categorical columns: the first `n_numeric` features under a Gaussian with a
    learned log-sigma each (as Gaussian), then one softmax per categorical column over its one-hot group of
    `groups[g]` features (the HI-VAE's heterogeneous likelihood, Nazabal et al. 2020). params: (B, F) with
    F = n_numeric + sum(groups): means, then each group's logits. log p sums the Gaussian densities and the
    categories' log-probabilities (a density in the numeric features, a mass in the categorical ones). A missing
    value (NaN: a numeric feature, or a categorical column's whole group) is left out, as in Gaussian."""

    def __init__(self, n_numeric: int, groups: tuple[int, ...]):
        super().__init__()
        self.n_numeric, self.groups = n_numeric, tuple(groups)
        self.gaussian = Gaussian(n_numeric)

    def _split(self, t: Tensor) -> tuple[Tensor, list[Tensor]]:
        return t[:, :self.n_numeric], list(torch.split(t[:, self.n_numeric:], self.groups, dim=1))

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:  # (B, F), (B, F) -> (B,)
        (mean, logits), (num, onehot) = self._split(params.float()), self._split(x.float())
        out = self.gaussian.log_prob(mean, num) if self.n_numeric else params.new_zeros(len(x), dtype=torch.float)
        for lg, oh in zip(logits, onehot):
            out = out + (torch.log_softmax(lg, 1) * oh.nan_to_num(0.0)).sum(1)  # a missing group: all 0
        return out

    def mean(self, params: Tensor) -> Tensor:
        """The numeric means, and each categorical column's probabilities."""
        mean, logits = self._split(params.float())
        return torch.cat([mean, *(torch.softmax(lg, 1) for lg in logits)], 1)

    def sample(self, params: Tensor) -> Tensor:
        """A Gaussian draw of the numeric features, a one-hot draw of each category."""
        mean, logits = self._split(params.float())
        draws = [F.one_hot(torch.distributions.Categorical(logits=lg).sample(), lg.shape[1]).float() for lg in logits]
        return torch.cat([self.gaussian.sample(mean) if self.n_numeric else mean, *draws], 1)


LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian, "logistic": DiscretizedLogistic,
               "logistic-mix": MixtureLogistic}

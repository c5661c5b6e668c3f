"""What every vaekit model is: an encoder to a Gaussian posterior, a decoder, a likelihood."""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from ..distributions import DiagonalGaussian, Likelihood
from ..objectives import ELBOTerms, elbo_terms


class VAE(nn.Module):
    """Base class. Subclasses define `Config` (a frozen dataclass), `kind`, `encode`, `decode`.

    The trainer, the objectives and the CLI only use this interface, so image, text and tabular
    models share all of them.
    """

    Config: type
    kind: str = "generic"
    name: str = "?"  # set by the registry
    likelihood: Likelihood

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def set_data_options(self, options: dict) -> None:
        """Settings the data decide for a new model (TrainingData.model_options) beyond its Config: a
        model that keeps what it takes in a persistent buffer, so a loaded run needs nothing more."""

    def encode(self, x: Tensor) -> DiagonalGaussian:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters for z: (B, D) -> (B, *data_shape)."""
        raise NotImplementedError

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) per example, (B,). Text models override this (teacher forcing)."""
        return self.likelihood.log_prob(self.decode(z), x)

    def forward(self, x: Tensor) -> ELBOTerms:
        return elbo_terms(self, x)

    def example_input(self, batch_size: int = 2) -> Tensor:
        """A valid input batch, for the summary and the contract tests."""
        raise NotImplementedError

    def encoder_only_parameters(self) -> list[nn.Parameter]:
        """The parameters that `encode` uses and `log_likelihood` does not: what a refinement of the
        encoder trains (TrainConfig.trainable = "encoder"). Found by autograd on an example batch,
        so no model lists them by hand; a parameter both sides use (text-rnn's shared embedding)
        counts as the decoder's and stays fixed."""
        params = [p for p in self.parameters() if p.requires_grad]
        was_training = self.training
        self.eval()  # no dropout draws, no batch-norm statistics updated by this probe
        try:
            with torch.enable_grad():
                x = self.example_input(2)
                posterior = self.encode(x)
                used_by_encoder = torch.autograd.grad(posterior.mean.sum() + posterior.log_var.sum(), params,
                                                      allow_unused=True)
                used_by_decoder = torch.autograd.grad(self.log_likelihood(x, posterior.mean.detach()).sum(),
                                                      params, allow_unused=True)
        finally:
            self.train(was_training)
        return [p for p, e, d in zip(params, used_by_encoder, used_by_decoder) if e is not None and d is None]

    @torch.no_grad()
    def decode_mean(self, z: Tensor) -> Tensor:
        """E[x | z] in data space: (B, D) -> (B, *data_shape)."""
        return self.likelihood.mean(self.decode(z))

    def decode_draw(self, z: Tensor) -> Tensor:
        """A draw of x from p(x | z) in data space (torch's global RNG): (B, D) -> (B, *data_shape)."""
        return self.likelihood.sample(self.decode(z))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """n draws from the prior, decoded to their means."""
        z = temperature * torch.randn(n, self.latent_dim, device=self.device)
        return self.decode_mean(z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decode the posterior mean of x."""
        return self.decode_mean(self.encode(x).mean)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


def keras_init(module: nn.Module) -> None:
    """Keras' default initialisers, so the design document's models start where its Keras code does:
    glorot-uniform kernels, zero biases, orthogonal recurrent kernels, uniform(-0.05, 0.05) embeddings.

    PyTorch's defaults (Kaiming-uniform with a=sqrt(5), biases drawn from the fan-in) start these
    small models differently, and how often a 2-D latent collapses depends on where training starts.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.uniform_(m.weight, -0.05, 0.05)
        elif isinstance(m, (nn.GRU, nn.LSTM)):
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):  # Keras: one glorot matrix over all gates
                    nn.init.xavier_uniform_(p)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(p)
                else:
                    nn.init.zeros_(p)


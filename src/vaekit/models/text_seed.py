"""The design document's sentence VAE, kept faithfully as the baseline.

Encoder: Embedding(64) -> BiGRU(32) -> BiGRU(16) -> Dense(16) -> (z_mean, z_log_var), latent 32.
Decoder: Dense(16) -> RepeatVector(T) -> BiGRU(16) -> BiGRU(32) -> softmax over the vocabulary.
The decoder never sees the previous words, so it can only learn lengths and frequent words: it is
the collapse-prone baseline the autoregressive default (text_rnn.py) is measured against. Unlike
the document, padding positions never count in the loss.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributions import DiagonalGaussian
from ..errors import VaekitError
from ..kernels.gru import bigru, use_fused
from . import register
from .base import VAE, keras_init

PAD = 0


@dataclass(frozen=True)
class TextSeedConfig:
    vocab_size: int = 10_000
    max_len: int = 50  # T: decoder length when sampling (training uses the batch's length)
    embed_dim: int = 64
    encoder_units: tuple[int, ...] = (32, 16)  # BiGRU sizes (per direction)
    hidden_dim: int = 16
    latent_dim: int = 32
    decoder_units: tuple[int, ...] = (16, 32)
    init: str = "keras"  # Keras' default initialisers, as the document's code starts; or "torch"

    def __post_init__(self):
        object.__setattr__(self, "encoder_units", tuple(self.encoder_units))
        object.__setattr__(self, "decoder_units", tuple(self.decoder_units))
        check_text_config(self)
        if self.init not in ("torch", "keras"):
            raise VaekitError(f"init must be 'torch' or 'keras', got '{self.init}'")


def check_text_config(config) -> None:
    """Refuse sizes that cannot build a model (configs can come from hostile files)."""
    if not 5 <= config.vocab_size <= 2_000_000:
        raise VaekitError(f"vocab_size must be in 5..2,000,000, got {config.vocab_size}")
    if not 2 <= config.max_len <= 10_000:
        raise VaekitError(f"max_len must be in 2..10,000, got {config.max_len}")
    if not 1 <= config.latent_dim <= 4096:
        raise VaekitError(f"latent_dim must be in 1..4096, got {config.latent_dim}")
    sizes = []
    for name, value in vars(config).items():
        if name.endswith(("_dim", "_units")) and name != "latent_dim":
            if isinstance(value, tuple) and not value:  # found by tests/test_fuzz.py: an empty stack
                raise VaekitError(f"{name} needs at least one layer size, got {value}")
            sizes += list(value) if isinstance(value, tuple) else [value]
    if any(not 1 <= s <= 16384 for s in sizes):
        raise VaekitError(f"layer sizes must be in 1..16384, got {sizes}")


def stacked_bigru(input_size: int, units: tuple[int, ...]) -> nn.ModuleList:
    layers, size = [], input_size
    for u in units:
        layers.append(nn.GRU(size, u, batch_first=True, bidirectional=True))
        size = 2 * u
    return nn.ModuleList(layers)


def run_stack(layers: nn.ModuleList, h: Tensor) -> Tensor:
    # Recurrences stay in fp32 under bf16/fp16 autocast: CPU RNN kernels are slower in bf16 and
    # the gain of mixed precision is in the vocabulary projection, which autocast still covers.
    # Training on CPU takes the fused layer (kernels/gru.py): the same function and parameters, one
    # autograd node instead of thousands of per-step ops; eval, CUDA (cuDNN) and export keep nn.GRU.
    with torch.autocast(h.device.type, enabled=False):
        h = h.float()
        for gru in layers:
            h = bigru(gru, h) if use_fused(gru, h) else gru(h)[0]
    return h


def token_nll(hidden: Tensor, x: Tensor, to_vocab: Callable[[Tensor], Tensor]) -> Tensor:
    """Summed negative log-likelihood of the non-padding tokens of each sentence.

    hidden: (B, T, H) decoder states, x: (B, T) targets -> (B,). The softmax layer runs on the
    real tokens only: padding never counts, so it is never computed either (the vocabulary
    projection is most of a text VAE's cost).
    """
    mask = x != PAD  # (B, T)
    logits = to_vocab(hidden[mask])  # (N_tokens, V)
    nll = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    nll[mask] = F.cross_entropy(logits.float(), x[mask], reduction="none")
    return nll.sum(1)


@register("text-seed")
class TextSeedVAE(VAE):
    Config = TextSeedConfig
    kind = "text"

    def __init__(self, config: TextSeedConfig):
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD)
        self.encoder = stacked_bigru(config.embed_dim, config.encoder_units)
        self.to_hidden = nn.Sequential(nn.Linear(2 * config.encoder_units[-1], config.hidden_dim), nn.ReLU())
        self.to_mean = nn.Linear(config.hidden_dim, config.latent_dim)
        self.to_log_var = nn.Linear(config.hidden_dim, config.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, config.hidden_dim), nn.ReLU())
        self.decoder = stacked_bigru(config.hidden_dim, config.decoder_units)
        self.to_vocab = nn.Linear(2 * config.decoder_units[-1], config.vocab_size)
        if config.init == "keras":
            keras_init(self)

    def encode(self, x: Tensor) -> DiagonalGaussian:
        h = run_stack(self.encoder, self.embedding(x))  # (B, T, 2*units)
        # The document's Keras GRU returns the last step's state; take it at each sentence's end.
        last = ((x != PAD).sum(1) - 1).clamp(min=0).view(-1, 1, 1)  # (B, 1, 1)
        # gather, not h[arange(B), last]: the same numbers, and it exports to ONNX with any batch size
        h = self.to_hidden(h.gather(1, last.expand(-1, 1, h.shape[-1])).squeeze(1))  # (B, hidden)
        return DiagonalGaussian(self.to_mean(h), self.to_log_var(h))

    def decoder_states(self, z: Tensor, steps: int) -> Tensor:
        """z repeated over time (the document's RepeatVector) through the BiGRUs: (B, T, 2*units)."""
        h = self.from_latent(z).unsqueeze(1).expand(-1, steps, -1)  # (B, T, hidden)
        return run_stack(self.decoder, h.contiguous())

    def decode(self, z: Tensor, length: int | None = None) -> Tensor:
        """Logits (B, T, V) for every position."""
        return self.to_vocab(self.decoder_states(z, length or self.config.max_len))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        return -token_nll(self.decoder_states(z, x.shape[1]), x, self.to_vocab)

    def example_input(self, batch_size: int = 2) -> Tensor:
        x = torch.randint(4, self.config.vocab_size, (batch_size, 7), device=self.device)
        x[:, -2:] = PAD
        x[:, -3] = 3  # <eos>
        return x

    @torch.no_grad()
    def decode_mean(self, z: Tensor) -> Tensor:
        """Most likely token at each position, (B, T) ids (a non-autoregressive decoder)."""
        return self.decode(z).argmax(-1)

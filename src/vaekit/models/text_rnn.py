"""The default sentence VAE: an autoregressive LSTM decoder conditioned on z (Bowman et al. 2016,
"Generating sentences from a continuous space").

Encoder: Embedding -> bidirectional LSTM (packed, so padding is never read) -> (z_mean, z_log_var).
Decoder: LSTM over [embedding of the previous word ; z], initial state from z -> softmax.
Word dropout (Bowman et al. 2016, sec. 3.2) replaces decoder inputs by <unk> during training so the
decoder must lean on z; with KL annealing and free bits (training/config.py) it keeps the code in use.
Dropout on the decoder's input embeddings and on its outputs (Zaremba et al. 2014, as He et al. 2019
train their PTB models) keeps the language model from overfitting a corpus the size of PTB.
Weight drop (DropConnect on the decoder's recurrent weights, one mask per batch shared by every time
step; Wan et al. 2013, Merity et al. 2018 "Regularizing and optimizing LSTM language models") regularises
the recurrence itself, which dropout between layers does not reach.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from ..distributions import DiagonalGaussian
from ..errors import VaekitError
from ..kernels.lstm import lstm as bf16_lstm
from . import register
from .base import VAE
from .text_seed import PAD, check_text_config, token_nll

UNK, BOS, EOS = 1, 2, 3


@dataclass(frozen=True)
class TextRNNConfig:
    vocab_size: int = 10_000
    max_len: int = 50  # longest sentence generated (tokens, with <eos>)
    embed_dim: int = 256
    encoder_dim: int = 256  # per direction
    decoder_dim: int = 1024
    latent_dim: int = 32
    word_dropout: float = 0.3  # share of decoder inputs replaced by <unk> while training
    dropout: float = 0.5  # dropout on the decoder's input embeddings and outputs while training
    weight_drop: float = 0.0  # share of the decoder's recurrent weights dropped per batch while training
    tie_embeddings: bool = True  # output softmax shares the input embedding (Press & Wolf 2017)

    # What a config.json saved before a field existed meant (api.model_from_config fills these in):
    # runs trained before tying was added have a separate output layer.
    OLD_RUN_VALUES = {"tie_embeddings": False}

    def __post_init__(self):
        check_text_config(self)
        for name in ("word_dropout", "dropout", "weight_drop"):
            if not 0 <= getattr(self, name) < 1:
                raise VaekitError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def trim_padding(x: Tensor) -> Tensor:
    """Drop the columns that are padding in every sentence of the batch: (B, T) -> (B, T')."""
    longest = int((x != PAD).sum(1).max()) if len(x) else 1
    return x[:, :max(longest, 1)]


def fast_dropout(x: Tensor, p: float) -> Tensor:
    """F.dropout(x, p) in training, in distribution (p rounded to a multiple of 1/65536), for CPUs.

    On CPU, F.dropout's bernoulli_ draw is slow: about 45 ms for the decoder's 4096 x 1024 recurrent
    matrix, a tenth of a one-thread decoder step. Two 16-bit uniform integers cut from each 32-bit
    randint draw, compared straight into a float mask (a boolean mask's type promotion alone would
    cost 20 ms), cost a quarter of that, backward included: the Trainer's step with weight drop 0.5
    runs 1.17x faster (bench/dropout_step.py). CUDA keeps its fused dropout kernel.
    """
    if x.device.type != "cpu":
        return F.dropout(x, p)
    n = x.numel()
    bits = torch.randint(-2**31, 2**31 - 1, ((n + 1) // 2,), dtype=torch.int32, device=x.device)
    uniform = bits.view(torch.int16)[:n].view(x.shape)  # uniform on [-32768, 32767]
    mask = torch.ge(uniform, round(p * 65536) - 32768, out=x.new_empty(x.shape))  # 1 with P = 1-p
    return x * mask.mul_(1 / (1 - p))


@functools.cache
def _amx_cpu() -> bool:
    """Whether this CPU has AMX tiles (torch's private probe; assume so where it is missing)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return True if probe is None else bool(probe())


def run_lstm(lstm: nn.LSTM, inputs: Tensor | PackedSequence, state=None, weights: dict | None = None):
    """lstm(inputs, state), with `weights` standing in for its parameters in this call, and not
    through oneDNN's bf16 LSTM where that would differentiate it wrongly: an LSTM wider than 512 units,
    training on a CPU with AMX. There the text decoder (one layer, padded batch-first inputs, an initial
    state) runs kernels/lstm.py's LSTM (bf16 products, fp32 gates, its own backward pass); any other
    LSTM runs in fp32.

    oneDNN's bf16 LSTM backward on AMX CPUs (torch 2.13, Intel Xeon with amx_bf16) returns gradients
    that point elsewhere for 1024 units: cosine 0.78 to fp32's at initialisation, 0.68 down to -0.03
    on a trained PTB model, where its forward agrees to 1e-4 and its AVX512-BF16 path on the same
    machine (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16) agrees to 0.9999; 512 units agree to 0.9998. A PTB
    run trained with it fell 5 nats behind by epoch 3 (bench/RESULTS.md). The 1024-unit decoder in
    fp32 made a PTB training step 1.45x slower than the wrong bf16 one; with kernels/lstm.py the step
    is 1.35x faster than with the fp32 decoder (bench/lstm_step.py). Forward-only calls (evaluation,
    generation) keep oneDNN's bf16 LSTM, whose forward is right.
    """
    def call(inputs, state):
        if weights:
            return torch.func.functional_call(lstm, weights, (inputs, state))
        return lstm(inputs, state)

    device = (inputs.data if isinstance(inputs, PackedSequence) else inputs).device
    if not (lstm.hidden_size > 512 and device.type == "cpu" and torch.is_grad_enabled()
            and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and _amx_cpu()):
        return call(inputs, state)
    with torch.autocast("cpu", enabled=False):
        if (isinstance(inputs, Tensor) and state is not None and lstm.num_layers == 1 and lstm.bias
                and not lstm.bidirectional and lstm.batch_first and not lstm.proj_size):
            params = {**dict(lstm.named_parameters()), **(weights or {})}
            names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
            return bf16_lstm(inputs, state, *(params[n] for n in names))
        return call(inputs.float(), None if state is None else tuple(s.float() for s in state))


class Dropout(nn.Dropout):
    """nn.Dropout through fast_dropout: the same module, state dict and eval-mode identity."""

    def forward(self, x: Tensor) -> Tensor:
        return fast_dropout(x, self.p) if self.training and self.p > 0 else x


@register("text-rnn")
class TextRNNVAE(VAE):
    Config = TextRNNConfig
    kind = "text"

    def __init__(self, config: TextRNNConfig):
        super().__init__(config)
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        self.encoder = nn.LSTM(c.embed_dim, c.encoder_dim, batch_first=True, bidirectional=True)
        self.to_mean = nn.Linear(2 * c.encoder_dim, c.latent_dim)
        self.to_log_var = nn.Linear(2 * c.encoder_dim, c.latent_dim)
        self.to_state = nn.Linear(c.latent_dim, 2 * c.decoder_dim)  # initial (h, c) of the decoder
        self.decoder = nn.LSTM(c.embed_dim + c.latent_dim, c.decoder_dim, batch_first=True)
        if c.tie_embeddings:
            # Project the state down to embed_dim, then score words with the embedding matrix itself
            # (Press & Wolf 2017; Inan et al. 2017): one matrix learns both roles, and the softmax
            # costs embed_dim instead of decoder_dim multiply-adds per word, so the recurrent state
            # can grow at the same cost.
            self.to_embed = nn.Linear(c.decoder_dim, c.embed_dim)
            self.vocab_bias = nn.Parameter(torch.zeros(c.vocab_size))
            # N(0, 1) rows would start the logits at a scale of sqrt(embed_dim); LSTM language
            # models start their embeddings at U(-0.1, 0.1) (Zaremba et al. 2014).
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        else:
            self.to_vocab = nn.Linear(c.decoder_dim, c.vocab_size)
        self.dropout = Dropout(c.dropout)  # identity in eval mode: generation and evaluation see no noise

    def encode(self, x: Tensor) -> DiagonalGaussian:
        x = trim_padding(x)
        lengths = (x != PAD).sum(1).clamp(min=1).cpu()  # (B,)
        packed = pack_padded_sequence(self.embedding(x), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = run_lstm(self.encoder, packed)  # h: (2, B, encoder_dim), final forward and backward states
        h = torch.cat([h[0], h[1]], -1)  # (B, 2*encoder_dim)
        return DiagonalGaussian(self.to_mean(h), self.to_log_var(h))

    def init_state(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h, c = torch.tanh(self.to_state(z)).chunk(2, -1)  # (B, decoder_dim) each
        return h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def run_decoder(self, tokens: Tensor, z: Tensor, state):
        """Decoder states for input tokens (B, L): (B, L, decoder_dim) and the new state."""
        embedded = self.dropout(self.embedding(tokens))  # (B, L, embed_dim)
        inputs = torch.cat([embedded, z.unsqueeze(1).expand(-1, tokens.shape[1], -1)], -1)
        weights = None
        if self.training and self.config.weight_drop > 0:
            # The dropped matrix stands in for the parameter in this call only: the parameter, the
            # state dict and evaluation are untouched, and its gradient flows through the mask.
            dropped = fast_dropout(self.decoder.weight_hh_l0, self.config.weight_drop)  # (4*decoder_dim, decoder_dim)
            weights = {"weight_hh_l0": dropped}
        out, state = run_lstm(self.decoder, inputs, state, weights)
        return self.dropout(out), state

    def logits(self, states: Tensor) -> Tensor:
        """Decoder states (..., decoder_dim) -> vocabulary logits (..., V)."""
        if self.config.tie_embeddings:
            return F.linear(self.to_embed(states), self.embedding.weight, self.vocab_bias)
        return self.to_vocab(states)

    def step(self, tokens: Tensor, z: Tensor, state):
        """One decoding step: tokens (B, L) -> logits (B, L, V) and the new state."""
        out, state = self.run_decoder(tokens, z, state)
        return self.logits(out), state

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """Teacher forcing: predict x[t] from <bos>, x[:t] and z. x: (B, T) -> (B,)."""
        x = trim_padding(x)
        inputs = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], 1)  # (B, T)
        if self.training and self.config.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=x.device) < self.config.word_dropout
            drop[:, 0] = False  # keep <bos>
            inputs = inputs.masked_fill(drop & (inputs != PAD), UNK)
        states, _ = self.run_decoder(inputs, z, self.init_state(z))
        return -token_nll(states, x, self.logits)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Greedy decoding's logits, (B, max_len, V); see vaekit.generate for other strategies."""
        from ..generate import next_word_logits  # <pad> and <bos> are never the next word

        tokens = torch.full((len(z), 1), BOS, dtype=torch.long, device=z.device)
        state, steps = self.init_state(z), []
        for _ in range(self.config.max_len):
            logits, state = self.step(tokens, z, state)
            steps.append(next_word_logits(logits[:, -1]))  # (B, V)
            tokens = steps[-1].argmax(-1, keepdim=True)
        return torch.stack(steps, 1)

    @torch.no_grad()
    def decode_mean(self, z: Tensor) -> Tensor:
        """Greedy decoding: token ids (B, max_len), padded with 0 after <eos>."""
        ids = self.decode(z).argmax(-1)  # (B, T)
        after_eos = (ids == EOS).long().cumsum(1) - (ids == EOS).long() > 0
        return ids.masked_fill(after_eos, PAD)

    def example_input(self, batch_size: int = 2) -> Tensor:
        x = torch.randint(4, self.config.vocab_size, (batch_size, 7), device=self.device)
        x[:, -2:] = PAD
        x[:, -3] = EOS
        return x

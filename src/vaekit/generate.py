"""Decoding sentences from latent codes: greedy, beam search, and top-k / top-p sampling.

Works with any autoregressive text model exposing `init_state(z)` and `step(tokens, z, state)`
(models/text_rnn.py). Models without them (the document's non-autoregressive `text-seed`) decode
position-wise: argmax, or sampling from each position's softmax.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import VaekitError, check_count, check_finite

PAD, BOS, EOS = 0, 2, 3
NEVER_NEXT = (PAD, BOS)  # ids no decoder writes as a next word
STRATEGIES = ("greedy", "beam", "sample")
# Beam search runs in Python, one candidate list per beam: wider beams than this only cost time.
MAX_BEAM = 100


@dataclass(frozen=True)
class DecodeConfig:
    strategy: str = "greedy"  # greedy | beam | sample
    beam_size: int = 5
    top_k: int = 0  # sample only from the k most likely words; 0 = all
    top_p: float = 1.0  # nucleus sampling (Holtzman et al. 2020): smallest set with mass >= p
    temperature: float = 1.0  # softmax temperature when sampling
    max_len: int | None = None  # default: the model's max_len
    # Repetition control (greedy, beam and sampling): the loops "as well as the same as as well as".
    no_repeat_ngram: int = 0  # never emit an n-gram of this size twice in a sentence; 0 = off
    repetition_penalty: float = 1.0  # > 1 makes words already emitted less likely (Keskar et al. 2019)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise VaekitError(f"decoding strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        check_count("beam size (--beam-size)", self.beam_size, 1, MAX_BEAM)
        check_count("top-k (--top-k)", self.top_k, 0)
        if not 0 < check_finite("top-p (--top-p)", self.top_p) <= 1:
            raise VaekitError(f"top-p (--top-p) must be in (0, 1], got {self.top_p}")
        if check_finite("the sampling temperature (--decode-temperature)", self.temperature) <= 0:
            raise VaekitError("the sampling temperature (--decode-temperature) must be above 0, "
                              f"got {self.temperature}")
        if self.max_len is not None:
            check_count("max_len", self.max_len, 1)
        check_count("no-repeat n-gram size (--no-repeat-ngram)", self.no_repeat_ngram, 0)
        if check_finite("the repetition penalty (--repetition-penalty)", self.repetition_penalty) < 1:
            raise VaekitError("the repetition penalty (--repetition-penalty) must be >= 1, "
                              f"got {self.repetition_penalty}")


def filter_logits(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Set logits outside the top-k / nucleus to -inf. logits: (B, V)."""
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        mass_before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)
        remove = mass_before >= top_p  # keep the smallest prefix whose mass reaches top_p
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def next_word_logits(logits: Tensor) -> Tensor:
    """Logits (..., V) with <pad> and <bos> ruled out as the next word. Training leaves <pad> out of the
    loss, so its logit is never pushed down by a target of its own: in a briefly trained model it won the
    argmax once repetition control had banned the looping word, and the hidden <pad> split the n-gram
    history, so the loop went on ("mat mat mat <pad> mat mat")."""
    return logits.index_fill(-1, torch.tensor(NEVER_NEXT, device=logits.device), float("-inf"))


def penalise_repeats(logits: Tensor, history: Tensor, config: DecodeConfig) -> Tensor:
    """Logits (B, V) for the next word after `history` (B, t) ids, with the repetition controls applied.

    Repetition penalty (Keskar et al. 2019, CTRL): the logit of a word already emitted is divided by
    the penalty where positive and multiplied where negative. No-repeat n-grams (Paulus et al. 2018):
    a word that would complete an n-gram already in the history gets -inf.
    """
    if config.repetition_penalty != 1.0 and history.shape[1]:
        seen = logits.gather(1, history)  # (B, t)
        seen = torch.where(seen > 0, seen / config.repetition_penalty, seen * config.repetition_penalty)
        logits = logits.scatter(1, history, seen)
    n = config.no_repeat_ngram
    if n > 0 and history.shape[1] >= n:
        windows = history.unfold(1, n, 1)  # (B, W, n): every n-gram so far
        prefix = history[:, history.shape[1] - n + 1:]  # (B, n-1): the n-gram being completed
        match = (windows[:, :, :n - 1] == prefix.unsqueeze(1)).all(-1)  # (B, W)
        # Unmatched windows write to a spare column V, so every write is True (scatter keeps one of
        # several writes to the same place, and a False must never undo a True).
        vocab = logits.shape[-1]
        targets = torch.where(match, windows[:, :, -1], vocab)  # (B, W)
        banned = logits.new_zeros(len(logits), vocab + 1, dtype=torch.bool).scatter_(1, targets, True)
        logits = logits.masked_fill(banned[:, :vocab], float("-inf"))
        stuck = torch.isinf(logits).all(-1)  # (B,) every word banned (a tiny vocabulary): end the sentence
        logits[stuck, EOS] = 0.0
    return logits


@torch.no_grad()
def decode(model, z: Tensor, config: DecodeConfig = DecodeConfig()) -> Tensor:
    """Token ids (B, T) for latent codes z (B, D), padded with 0 after <eos>."""
    max_len = config.max_len or model.config.max_len
    if not hasattr(model, "step"):
        return _decode_positionwise(model, z, config, max_len)
    if config.strategy == "beam":
        return torch.stack([_beam(model, z[i:i + 1], config, max_len) for i in range(len(z))])
    tokens = torch.full((len(z), 1), BOS, dtype=torch.long, device=z.device)
    state, out = model.init_state(z), []
    done = torch.zeros(len(z), dtype=torch.bool, device=z.device)
    history = tokens.new_zeros(len(z), 0)  # (B, t) words emitted so far
    for _ in range(max_len):
        logits, state = model.step(tokens, z, state)
        logits = penalise_repeats(next_word_logits(logits[:, -1].float()), history, config)  # (B, V)
        if config.strategy == "sample":
            probs = filter_logits(logits / config.temperature, config.top_k, config.top_p).softmax(-1)
            tokens = torch.multinomial(probs, 1)
        else:
            tokens = logits.argmax(-1, keepdim=True)
        out.append(tokens[:, 0].masked_fill(done, PAD))
        history = torch.cat([history, tokens], 1)
        done |= tokens[:, 0] == EOS
        if done.all():
            break
    return _pad_to(torch.stack(out, 1), max_len)


def _beam(model, z: Tensor, config: DecodeConfig, max_len: int) -> Tensor:
    """Beam search for one code z (1, D): the most likely sentence by summed log-probability."""
    beam_size = config.beam_size
    beams = [(0.0, [BOS], model.init_state(z))]
    finished: list[tuple[float, list[int]]] = []
    for _ in range(max_len):
        candidates = []
        for score, seq, state in beams:
            logits, new_state = model.step(torch.tensor([[seq[-1]]], device=z.device), z, state)
            history = torch.tensor([seq[1:]], dtype=torch.long, device=z.device)  # (1, t)
            log_probs = penalise_repeats(next_word_logits(logits[0, -1:].float()), history, config)[0].log_softmax(-1)
            top = log_probs.topk(min(beam_size, len(log_probs)))  # a beam wider than the vocabulary
            candidates += [(score + lp.item(), seq + [tok.item()], new_state) for lp, tok in zip(*top)]
        candidates.sort(key=lambda c: c[0], reverse=True)
        beams = []
        for score, seq, state in candidates[:beam_size]:
            (finished if seq[-1] == EOS else beams).append((score, seq) if seq[-1] == EOS else (score, seq, state))
        if not beams or (finished and max(f[0] for f in finished) > beams[0][0]):
            break
    best = max(finished or [(s, q) for s, q, _ in beams], key=lambda f: f[0])[1][1:]
    return _pad_to(torch.tensor(best, device=z.device).unsqueeze(0), max_len)[0]


def _decode_positionwise(model, z: Tensor, config: DecodeConfig, max_len: int) -> Tensor:
    logits = model.decode(z, max_len).float()  # (B, T, V)
    if config.strategy == "sample":
        flat = filter_logits(logits.flatten(0, 1) / config.temperature, config.top_k, config.top_p)
        ids = torch.multinomial(flat.softmax(-1), 1).view(logits.shape[:2])
    else:  # beam search over independent positions is the argmax
        ids = logits.argmax(-1)
    after_eos = (ids == EOS).long().cumsum(1) - (ids == EOS).long() > 0
    return ids.masked_fill(after_eos, PAD)


def _pad_to(ids: Tensor, length: int) -> Tensor:
    if ids.shape[1] >= length:
        return ids[:, :length]
    return torch.cat([ids, ids.new_zeros(len(ids), length - ids.shape[1])], 1)

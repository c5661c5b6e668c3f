"""Variations of a sentence by editing it under the VAE: rewrite a share of its words, each chosen by the
decoder conditioned on a code drawn near the sentence's own.

Decoding a code from scratch asks the decoder to write the whole sentence back from a few dozen nats;
a decoder trained on a few thousand sentences writes one of its own instead (issue 25: meaning kept at
best in topic). Editing starts from the sentence: a chain of word rewrites, each a step of a Gibbs-like
sampler whose target is the VAE's p(x | z') (the word-replacement move of CGMH, Miao et al. 2019,
"Constrained sentence generation by Metropolis-Hastings sampling", with the VAE's conditional
likelihood as the target, as Kumar et al. 2020 use a latent code to steer such edits). One step:

1. pick a word position t not yet visited (uniformly), among the words the vocabulary knows
   (`keep_unknown`: a word outside it, which the decoder cannot rewrite with its meaning kept, stays);
2. the decoder, reading the sentence so far and z', proposes its `candidates` most likely words there
   (<unk> and the specials excluded), and the word already there joins them;
3. each candidate sentence is scored whole, log p(x' | z') (so the words after t count too: a candidate
   that breaks the rest of the sentence loses), the word already there `keep_penalty` nats lower (4 by
   default: it stays only where no rewrite comes within 4 nats of it; inf: it never stays);
4. with `delete` (off by default), the sentence without the word joins them too (CGMH's deletion move),
   scored log p(x without w_t | z') + log p(w_t | words before t, z'): the second term is what the
   reverse move, inserting w_t back, would propose it with (CGMH's acceptance ratio keeps it), so a
   deletion competes as a rewrite to "no word" that still pays for the word it removes, and wins where
   the rest of the sentence reads as well without it ("said that the" -> "said the", an adverb).
   Measured on the selection split (150 PTB validation sentences; 150 docs held-out ones as a check;
   bench/RESULTS.md, "variations: levers at EDA's amount of rewording"): near-paraphrases (change
   0.125) kept a little more meaning at equal BLEU (+0.007 and +0.005, each about one standard error),
   the default change none (-0.004, +0.001): an option for near-paraphrases, not the default;
5. one is drawn with probability proportional to exp(score / temperature).

The fidelity knob is `change`, the share of the sentence's words visited: small shares reword a few
words and keep the sentence's frame; 1.0 rewrites every word. z' = mean + spread * std * eps, eps ~ N(0, I),
gives each variation its own code. Words the run's vocabulary lacks are kept as written where not
rewritten (as typed, case included, where the tokenizer only lower-cases), not shown as <unk>.

Cost per rewrite: one decoder pass over the sentence up to t, and one over the rest for each candidate
and the deletion (the prefix's state is shared), so a variation costs about
change * length * (candidates + 1) / 2 sentence passes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import VaekitError, check_count, check_finite
from .generate import BOS, EOS, PAD
from .variations import (
    DEFAULT_CHANGE,
    EDIT_CANDIDATES,
    EDIT_DELETE,
    EDIT_KEEP_PENALTY,
    EDIT_KEEP_UNKNOWN,
    EDIT_TEMPERATURE,
)

UNK = 1
MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class EditConfig:
    """How `vary` edits a sentence (the module docstring): `change` is the fidelity knob."""

    change: float = DEFAULT_CHANGE  # share of the sentence's words rewritten (at least one word)
    candidates: int = EDIT_CANDIDATES  # words the decoder proposes per rewrite
    temperature: float = EDIT_TEMPERATURE  # < 1 favours the likelier candidate sentences (more fluent, less varied)
    keep_penalty: float = EDIT_KEEP_PENALTY  # nats a visited word pays to stay; inf: always rewrite; 0: a Gibbs step
    delete: bool = EDIT_DELETE  # a visited word may also be deleted (step 4 of the module docstring)
    keep_unknown: bool = EDIT_KEEP_UNKNOWN  # words outside the vocabulary are never visited (kept as typed)

    def __post_init__(self):
        if not 0 < check_finite("the share of words changed (--change)", self.change) <= 1:
            raise VaekitError(f"the share of words changed (--change) must be in (0, 1], got {self.change}")
        check_count("candidates per rewrite (--candidates)", self.candidates, 1, MAX_CANDIDATES)
        if check_finite("the edit temperature (--edit-temperature)", self.temperature) <= 0:
            raise VaekitError(f"the edit temperature (--edit-temperature) must be above 0, got {self.temperature}")
        if math.isnan(self.keep_penalty) or self.keep_penalty < 0:
            raise VaekitError(f"the keep penalty (--keep-penalty) must be >= 0 (or inf), got {self.keep_penalty}")
        if not isinstance(self.delete, bool):
            raise VaekitError(f"delete must be True or False, got {self.delete!r}")
        if not isinstance(self.keep_unknown, bool):
            raise VaekitError(f"keep_unknown must be True or False, got {self.keep_unknown!r}")


def rewrite_positions(n_words: int, change: float, generator: torch.Generator | None = None,
                      allowed: list[bool] | None = None) -> list[int]:
    """Which word positions (of 0..n_words-1) a variation rewrites, in the order it rewrites them:
    round(change * n_words) of them, at least one, drawn without replacement; with `allowed`, only
    positions marked True (fewer where too few are)."""
    count = min(n_words, max(1, round(change * n_words)))
    order = torch.randperm(n_words, generator=generator).tolist()
    if allowed is not None:
        order = [p for p in order if allowed[p]]
    return order[:count]


@torch.no_grad()
def edit_codes(model, ids: list[int], z: Tensor, config: EditConfig,
               generator: torch.Generator | None = None) -> list[list[int | None]]:
    """Variations of the sentence `ids` (its word ids, without <eos>), one per code z (n, D): for each,
    the word id at every position of `ids` after editing, None where the word was deleted. A sentence of
    no words comes back unchanged (the caller decodes from the code instead).

    Each chain runs on its own: one decoder pass over its prefix, then one over the rest for each of its
    candidates from the prefix's state. Running the n chains as one batch instead (every candidate
    sentence scored whole, n * candidates at a time) does twice the work, the output projection over the
    vocabulary dominating, and measured slower on a 2-core CPU (2.6 s against 1.7 s per sentence, n 5)."""
    return [_edit_chain(model, ids, code, config, generator) for code in z]


def _edit_chain(model, ids: list[int], z: Tensor, config: EditConfig,
                generator: torch.Generator | None) -> list[int | None]:
    """One variation of `ids` under the code z (D,), per position of `ids` (None: deleted); keep_penalty
    < inf makes the word already at a visited position a candidate too, its sentence's score lowered by
    that many nats: 0 is a Gibbs step, which keeps words the decoder finds likeliest and so rewrites rare,
    meaning-bearing words into common ones; inf always rewrites (or deletes)."""
    slots: list[int | None] = list(ids)
    if not slots:
        return slots
    z = z.unsqueeze(0)  # (1, D)
    banned = torch.zeros(model.config.vocab_size, dtype=torch.bool, device=z.device)
    banned[[PAD, UNK, BOS, EOS]] = True
    # A word the vocabulary lacks (a name, a number, a rare term: PTB's <unk>) is one the decoder cannot
    # propose a rewrite for that keeps its meaning, so it stays as typed; a sentence of no known words is
    # rewritten anyway (there is nothing else to vary).
    allowed = [w != UNK for w in slots] if config.keep_unknown and UNK in slots and any(w != UNK for w in slots) \
        else None
    for position in rewrite_positions(len(slots), config.change, generator, allowed):
        words = [w for w in slots if w is not None]  # the sentence as edited so far
        t = sum(w is not None for w in slots[:position])  # the visited word's index in it
        # The decoder reads <bos> and the words before t: its state and its distribution over the word at t.
        prefix = torch.tensor([[BOS, *words[:t]]], device=z.device)  # (1, t+1)
        logits, state = model.step(prefix, z, model.init_state(z))  # (1, t+1, V)
        log_p_t = logits[0, -1].float().log_softmax(-1)  # (V,)
        proposal = log_p_t.masked_fill(banned, -math.inf)
        proposal[words[t]] = -math.inf if config.keep_penalty == math.inf else math.inf  # out, or always in
        k = min(config.candidates, int(torch.isfinite(proposal).sum()))
        rest = torch.tensor([*words[t + 1:], EOS], device=z.device)  # (R,)
        scores, choice = [], proposal.topk(k).indices  # (K,)
        if k:
            # Each candidate sentence from t on, scored from the shared state: log p(w_t) + log p(rest | w_t),
            # so a candidate that breaks the rest of the sentence loses.
            tokens = torch.cat([choice[:, None], rest.expand(k, -1)[:, :-1]], 1)  # (K, R): inputs after w_t
            logits_rest, _ = model.step(tokens, z.expand(k, -1), _repeat_state(state, k))  # (K, R, V)
            score = log_p_t[choice] + _log_prob(logits_rest, rest.expand(k, -1))  # (K,)
            if config.keep_penalty != math.inf:
                score = torch.where(choice == words[t], score - config.keep_penalty, score)
            scores.append(score)
        if config.delete and len(words) > 1:
            # The rest read straight after the prefix, plus what re-inserting w_t would cost (step 4).
            skipped = log_p_t[rest[0]]
            if len(rest) > 1:
                logits_skip, _ = model.step(rest[None, :-1], z, state)  # (1, R-1, V)
                skipped = skipped + _log_prob(logits_skip, rest[None, 1:])[0]
            scores.append((skipped + log_p_t[words[t]]).view(1))
        if not scores:
            continue
        score = torch.cat(scores)  # (K,) or (K+1,): the last the deletion
        pick = torch.multinomial((score / config.temperature).softmax(0), 1, generator=generator).item()
        slots[position] = int(choice[pick]) if pick < k else None
    return slots


def _repeat_state(state, k: int):
    """A recurrent state (tuple of (layers, 1, H)) for k sequences."""
    return tuple(s.expand(-1, k, -1).contiguous() for s in state)


def _log_prob(logits: Tensor, targets: Tensor) -> Tensor:
    """Summed log-probabilities of targets (B, R) under logits (B, R, V): (B,)."""
    return logits.float().log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2).sum(1)


def edit_variations(model, words: list[str], ids: list[int], z: Tensor, config: EditConfig,
                    vocabulary: list[str], generator: torch.Generator | None = None) -> list[str]:
    """One variation per code z (n, D) of the sentence `words` (its words as typed, one per id of `ids`):
    the rewritten sentences, words joined by spaces. Words not rewritten keep their spelling, so a word
    outside the vocabulary reads as typed, not as <unk>."""
    return [" ".join(w if i == j else vocabulary[j] for w, i, j in zip(words, ids, new) if j is not None)
            for new in edit_codes(model, ids, z, config, generator)]

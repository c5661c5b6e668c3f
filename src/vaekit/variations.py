"""What `vary` does by default: how far from the sentence's code it draws, and how it decodes.

One knob, `spread`, chooses fidelity (issue 25): each variation decodes the code
z = mean + spread * std * eps, eps ~ N(0, I), where mean and std are the sentence's posterior. 0 gives the
posterior mean every time (one sentence, the reconstruction); small spreads reword a few words; large
spreads keep only the topic. bench/variations.py measures the curve (semantic consistency against
self-BLEU): on the embedded corpus (a 6-epoch run, free bits 1) spread 2 kept spread 1's semantic
consistency (0.179) with self-BLEU 54 instead of 70, hence the default (bench/RESULTS.md, "variations").

Decoding is greedy with repetition control (no repeated trigram, a mild repetition penalty), which
removes the loops a low-rate decoder falls into ("the same as as well as the same ...").
"""
from __future__ import annotations

DEFAULT_SPREAD = 2.0
VARY_DECODING = {"strategy": "greedy", "no_repeat_ngram": 3, "repetition_penalty": 1.2}


def default_decode_config():
    """The DecodeConfig `vaekit vary` and `TextRun.vary` use unless told otherwise."""
    from .generate import DecodeConfig  # here, not at import: the CLI reads the constants without torch

    return DecodeConfig(**VARY_DECODING)

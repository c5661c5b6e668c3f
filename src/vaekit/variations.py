"""What `vary` does by default with a sentence: edit it under codes drawn near its own (vaekit.editing).

Each variation draws a code z' = mean + spread * std * eps (eps ~ N(0, I); mean and std: the sentence's
posterior) and rewrites a share of the sentence's words, each chosen by the decoder given z' and the
words around it. The fidelity knob is that share, `change` (EditConfig): 0.1 swaps a word or two, 0.3
(the default) rewords a phrase, 1.0 rewrites every word. Chosen with bench/variations.py (bench/RESULTS.md,
"variations, edited" and "variations, 200 inputs"): change 0.3 at temperature 0.5 kept semantic
consistency at 0.78 with BLEU to the input about 40 and self-BLEU under 50 (text-rnn and text-minilm
alike), where decoding the code from scratch (the method before) kept 0.17-0.31 at BLEU 4-6. The keep
penalty of 4 nats (a visited word stays when no rewrite comes within 4 nats of it) was chosen on a
selection split (other held-out inputs, PTB validation), where it brought PTB's fluency ratio from 1.26
to 1.04 at the same meaning kept.

Decoding from the code (`--method decode`, a DecodeConfig) remains, greedy with repetition control (no
repeated trigram, a mild repetition penalty: the loops "the same as as well as the same ..."), for
models that cannot read a sentence word by word (text-seed) and for a sentence of no words.
"""
from __future__ import annotations

DEFAULT_SPREAD = 1.0
DEFAULT_CHANGE = 0.3
EDIT_CANDIDATES = 20  # words the decoder proposes per rewrite
EDIT_TEMPERATURE = 0.5  # < 1 favours the likelier candidate sentences
EDIT_KEEP_PENALTY = 4.0  # nats a visited word pays to stay as it is (inf: always rewritten)
# Words outside the vocabulary (names, numbers, rare terms; PTB's <unk>) are kept as typed, not rewritten:
# on PTB's selection split +0.003 semantic at equal BLEU, as fluent; on PTB's test set it took vaekit past
# EDA at EDA's BLEU (bench/RESULTS.md, "variations: words outside the vocabulary kept as typed").
EDIT_KEEP_UNKNOWN = True
EDIT_DELETE = False  # a visited word may also be deleted (vaekit.editing, step 4): neutral on meaning, so off
VARY_METHODS = ("edit", "decode")
VARY_DECODING = {"strategy": "greedy", "no_repeat_ngram": 3, "repetition_penalty": 1.2}


def default_decode_config():
    """The DecodeConfig `vaekit vary --method decode` and `Run.vary` use when decoding, unless told otherwise."""
    from .generate import DecodeConfig  # here, not at import: the CLI reads the constants without torch

    return DecodeConfig(**VARY_DECODING)

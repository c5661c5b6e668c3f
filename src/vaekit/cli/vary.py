"""`vaekit vary RUN SENTENCE`: variations of a given sentence (text runs)."""
from __future__ import annotations

import sys

from ..errors import MAX_OUTPUTS, VaekitError
from ..variations import DEFAULT_SPREAD as VARY_SPREAD
from .common import load_run, print_sentences
from .options import add_compute_options, add_run_verb, add_variation_options, finite, variation_config, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "vary", "variations of a given sentence", data=False,
                          out_help="also write the variations to this file, one per line (default: print only)")
    parser.add_argument("sentence", help="the sentence to vary (quote it); words outside the vocabulary are reported")
    parser.add_argument("-n", type=whole(1, MAX_OUTPUTS), default=5)
    parser.add_argument("--spread", type=finite(0), default=VARY_SPREAD,
                        help="scale of the posterior's standard deviation for each variation's code (0: the mean)")
    add_variation_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    add_compute_options(parser)
    return parser


def run(args) -> None:
    loaded = load_run(args)
    if not loaded.modality.makes_text:  # the Python API's Run.vary takes any kind's inputs
        raise VaekitError(f"vary works on text runs; for {loaded.modality.noun} use sample, reconstruct or "
                          "interpolate")
    config = variation_config(args)
    _note_what_is_read(loaded, args.sentence, kept=getattr(config, "keep_unknown", False))
    print_sentences(loaded.vary(args.sentence, args.n, args.spread, config, seed=args.seed), args)


def _note_what_is_read(run, sentence: str, kept: bool = False) -> None:
    """Notes on stderr where the run reads the sentence otherwise than typed: unknown words, too long.
    kept: the edit keeps unknown words as typed in its variations (--keep-unknown), so the note says so."""
    unknown = run.unknown_words(sentence)
    if unknown:
        fate = "kept as typed in the variations" if kept else "rewritten by the model"
        print(f"vaekit: note: not in the vocabulary (the model reads them as <unk>; {fate}): {', '.join(unknown)}",
              file=sys.stderr)
    if not run.tokenizer.encode(sentence)[:-1] or len(unknown) == len(run.tokenizer.tokenize(sentence)):
        print("vaekit: note: the sentence has no known words; its code is uninformed, so the variations "
              "follow the sentence's length at best", file=sys.stderr)
    if (tokens := len(run.tokenizer.encode(sentence))) > run.model.config.max_len:
        print(f"vaekit: note: the sentence has {tokens} tokens (with <eos>); the run reads only its first "
              f"{run.model.config.max_len}, the longest it was trained on", file=sys.stderr)

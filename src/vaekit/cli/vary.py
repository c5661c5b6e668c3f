"""`vaekit vary RUN SENTENCE`: variations of a given sentence (text runs)."""
from __future__ import annotations

import argparse
import sys

from ..errors import MAX_OUTPUTS, VaekitError
from ..variations import (
    DEFAULT_CHANGE,
    EDIT_CANDIDATES,
    EDIT_DELETE,
    EDIT_KEEP_PENALTY,
    EDIT_KEEP_UNKNOWN,
    EDIT_TEMPERATURE,
    VARY_METHODS,
)
from ..variations import DEFAULT_SPREAD as VARY_SPREAD
from .common import load_run, print_sentences
from .options import add_compute_options, add_decode_options, add_run_verb, decode_config, finite, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "vary", "variations of a given sentence", data=False,
                          out_help="also write the variations to this file, one per line (default: print only)")
    parser.add_argument("sentence", help="the sentence to vary (quote it); words outside the vocabulary are reported")
    parser.add_argument("-n", type=whole(1, MAX_OUTPUTS), default=5)
    parser.add_argument("--change", type=finite(0), default=DEFAULT_CHANGE,
                        help="the fidelity knob: share of the sentence's words each variation rewrites (0.1: a word "
                             "or two; 1: every word)")
    parser.add_argument("--spread", type=finite(0), default=VARY_SPREAD,
                        help="scale of the posterior's standard deviation for each variation's code (0: the mean)")
    parser.add_argument("--method", choices=VARY_METHODS, default="edit",
                        help="edit: rewrite words of the sentence under the code (default); decode: write a "
                             "sentence from the code alone (the decoding options below)")
    parser.add_argument("--candidates", type=whole(1, 1000), default=EDIT_CANDIDATES,
                        help="words proposed per rewrite (edit)")
    parser.add_argument("--edit-temperature", type=finite(0), default=EDIT_TEMPERATURE,
                        help="below 1: likelier rewrites, more fluent and less varied (edit)")
    parser.add_argument("--keep-penalty", type=float, default=EDIT_KEEP_PENALTY,
                        help="nats a visited word pays to stay as it is (edit; default %(default)s): it stays only "
                             "when its sentence beats every rewrite by that much; inf: always rewritten; 0: it "
                             "stays whenever the decoder finds it likeliest")
    parser.add_argument("--delete", action=argparse.BooleanOptionalAction, default=EDIT_DELETE,
                        help="a visited word may also be deleted where the sentence reads as well without it "
                             f"(edit; default: {'on' if EDIT_DELETE else 'off'})")
    parser.add_argument("--keep-unknown", action=argparse.BooleanOptionalAction, default=EDIT_KEEP_UNKNOWN,
                        help="words outside the run's vocabulary (names, numbers, rare terms) stay as typed; "
                             "--no-keep-unknown rewrites them too "
                             f"(edit; default: {'on' if EDIT_KEEP_UNKNOWN else 'off'})")
    parser.add_argument("--seed", type=int, default=0)
    add_decode_options(parser, "decoding (text; with --method decode)", repetition_control=True)
    add_compute_options(parser)
    return parser


def run(args) -> None:
    loaded = load_run(args)
    if not loaded.modality.makes_text:  # the Python API's Run.vary takes any kind's inputs
        raise VaekitError(f"vary works on text runs; for {loaded.modality.noun} use sample, reconstruct or "
                          "interpolate")
    _note_what_is_read(loaded, args.sentence)
    from ..editing import EditConfig

    decoding = decode_config(args)  # checked whichever method runs: a bad value is an error either way
    config = (EditConfig(args.change, args.candidates, args.edit_temperature, args.keep_penalty, args.delete,
                         args.keep_unknown) if args.method == "edit" else decoding)
    print_sentences(loaded.vary(args.sentence, args.n, args.spread, config, seed=args.seed), args)


def _note_what_is_read(run, sentence: str) -> None:
    """Notes on stderr where the run reads the sentence otherwise than typed: unknown words, too long."""
    unknown = run.unknown_words(sentence)
    if unknown:
        print(f"vaekit: note: not in the vocabulary, read as <unk>: {', '.join(unknown)}", file=sys.stderr)
    if not run.tokenizer.encode(sentence)[:-1] or len(unknown) == len(run.tokenizer.tokenize(sentence)):
        print("vaekit: note: the sentence has no known words; its code is uninformed, so the variations "
              "follow the sentence's length at best", file=sys.stderr)
    if (tokens := len(run.tokenizer.encode(sentence))) > run.model.config.max_len:
        print(f"vaekit: note: the sentence has {tokens} tokens (with <eos>); the run reads only its first "
              f"{run.model.config.max_len}, the longest it was trained on", file=sys.stderr)

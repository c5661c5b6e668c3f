"""Option machinery shared by the verbs: argparse types for numbers, options generated from the config
dataclasses (so the CLI and the Python API cannot drift apart), and the option groups several verbs share."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import types
import typing

RUN_HELP = "a run directory written by vaekit train"
COLUMN_HELP = "text runs given a CSV: the column of sentences, a header name or 0-based index (default: the run's)"
DATA_DIR_HELP = "where named data sets (mnist, ptb, ...) are looked up (default: the run's, else $VAEKIT_DATA)"
DATA_HELP = ("as the run was trained on: images (digits, mnist[:test], a folder, .npy/.npz, IDX), sentences (a text "
             "file, a CSV with --column, ptb:test) or a table (.csv, .npy, iris, wine, breast-cancer)")
DERIVED = ("image_shape", "vocab_size", "max_len", "n_features", "categories")  # model settings the data decides


# ---- numeric options ------------------------------------------------------------------------------
def whole(minimum: int = 1, maximum: int | None = None):
    """argparse type: a whole number in [minimum, maximum] (a count), refused with argparse's message."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum:,} to {maximum:,}" if maximum is not None else f"at least {minimum:,}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value:,}")
        return value
    return whole


def finite(minimum: float | None = None):
    """argparse type: a finite number (nan and inf refused), at least `minimum`."""
    def finite(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (minimum is not None and value < minimum):
            at_least = f" of at least {minimum:g}" if minimum is not None else ""
            raise argparse.ArgumentTypeError(f"must be a finite number{at_least}, got {text}")
        return value
    return finite


def _or_none(kind):
    """argparse type: `kind`, or None for the word "none" (a setting whose default is not None)."""
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)
    parse.__name__ = kind.__name__  # argparse's "invalid int value: ..."
    return parse


# ---- options from dataclasses -------------------------------------------------------------------
def _option_type(hint):
    """(argparse type, nargs, is_bool) for a dataclass field's type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
        args = list(typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return args[0], "+", False
    if hint is bool:
        return None, None, True
    return hint, None, False


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """The comment beside each field of a config dataclass: the one place a setting is explained."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    docs, name = {}, None
    for line in source.splitlines():
        if field := re.match(r"^\s+(\w+):[^#\n]*#\s*(.*)$", line):
            name, docs[field[1]] = field[1], field[2].strip()
        elif name and (more := re.match(r"^\s+#\s*(.*)$", line)):  # the comment goes on below its field
            docs[name] += " " + more[1].strip()
        else:
            name = None
    return docs


def _help(cls, name: str, default) -> str | None:
    parts = [field_docs(cls).get(name, "")] + ([f"(default: {default})"] if default is not None else [])
    return " ".join(p for p in parts if p).replace("%", "%%") or None


def add_config_options(parser, cls, skip=(), use_defaults=True, group_title=None, defaults=None):
    """One --option per field of the dataclass `cls` (underscores become dashes); `defaults`
    overrides the dataclass's own (a job's training defaults)."""
    group = parser.add_argument_group(group_title or cls.__name__)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, nargs, is_bool = _option_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        shown = (defaults or {}).get(f.name, f.default)
        default = shown if use_defaults else None
        help_ = _help(cls, f.name, shown if not is_bool else None)
        if is_bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_)
        else:
            if type(None) in typing.get_args(hints[f.name]) and f.default is not None:
                kind = _or_none(kind)  # e.g. --max-vocab none: the field's documented "None: all"
            group.add_argument(flag, type=kind, nargs=nargs, default=default, help=help_)
    return group


def config_from_args(cls, args, skip=()):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name not in skip}
    return cls(**values)


# ---- model options: the union of the registered models' Config fields for one kind -------------------
def model_fields(kind: str) -> dict:
    """{field: (type hint, models that have it, their comments)} over the registered models of `kind`."""
    from ..models import MODELS, model_names

    fields = {}
    for name in model_names(kind):
        cls = MODELS[name][0]
        hints = typing.get_type_hints(cls.Config)
        for f in dataclasses.fields(cls.Config):
            doc = field_docs(cls.Config).get(f.name, "")
            _, models, docs = fields.get(f.name, (None, [], []))
            fields[f.name] = (hints[f.name], models + [name], docs + ([doc] if doc and doc not in docs else []))
    return fields


def model_options(args, kind: str) -> dict:
    """The model options typed on the command line (the rest is left to the model's own defaults)."""
    return {n: getattr(args, n) for n in model_fields(kind) if n not in DERIVED and getattr(args, n, None) is not None}


def add_model_options(parser, modality) -> None:
    """--model and the options of the modality's models; fields its data decide (max_len) are left out."""
    from ..models import model_names

    kind, default, seed = modality.name, modality.default_model, modality.seed_model
    data_fields = {f.name for f in dataclasses.fields(modality.DataConfig)}
    group = parser.add_argument_group("model (defaults: the chosen model's own)")
    group.add_argument("--model", default=default, choices=model_names(kind),
                       help=(f"'{seed}' is the design document's architecture; " if seed else "")
                       + f"'{default}' the default")
    for name, (hint, models, docs) in model_fields(kind).items():
        if name in DERIVED or name in data_fields:
            continue
        kind_, nargs, is_bool = _option_type(hint)
        flag = "--" + name.replace("_", "-")
        help_ = " ".join(docs + [f"[{', '.join(models)}]"]).replace("%", "%%")
        if is_bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            group.add_argument(flag, type=kind_, nargs=nargs, default=None, help=help_)


# ---- option groups several verbs share ------------------------------------------------------------
def add_run_verb(subparsers, name: str, help_: str, data: bool = True,
                 out_help: str = "output file (default: inside the run directory)"):
    """The subparser of a verb that uses a run: RUN, --out, --overwrite and, with `data`, the data to read
    (--data, --data-dir, --column)."""
    parser = subparsers.add_parser(name, help=help_)
    parser.add_argument("run", help=RUN_HELP)
    if data:
        parser.add_argument("--data", required=True, help=DATA_HELP)
        parser.add_argument("--data-dir", help=DATA_DIR_HELP)
        parser.add_argument("--column", help=COLUMN_HELP)
    parser.add_argument("--out", help=out_help)
    parser.add_argument("--overwrite", action="store_true", help="replace what is at --out")
    return parser


def add_decode_options(parser, title: str = "decoding (text)", repetition_control: bool = False) -> None:
    """The text decoding options. repetition_control: default to vary's n-gram block and repetition penalty
    (verbs that write new text: greedy decoding of a prior or in-between code loops, "to be <unk> to be
    <unk> to be ..."); off, the plain argmax (reconstruct)."""
    group = parser.add_argument_group(title)
    group.add_argument("--strategy", default="greedy", choices=("greedy", "beam", "sample"))
    group.add_argument("--beam-size", type=int, default=5)
    group.add_argument("--top-k", type=int, default=0)
    group.add_argument("--top-p", type=float, default=1.0)
    group.add_argument("--decode-temperature", type=float, default=1.0, help="softmax temperature when sampling")
    group.add_argument("--no-repeat-ngram", type=int, default=0,
                       help="never repeat an n-gram of this size; 0: off (default: 3 where new text is written: "
                            "vary, sample, interpolate, raters; 0 for reconstruct)")
    group.add_argument("--repetition-penalty", type=float, default=1.0,
                       help=">1: words already written less likely (default: 1.2 where new text is written, 1 for "
                            "reconstruct)")
    if repetition_control:
        from ..variations import VARY_DECODING  # constants only: no torch import

        parser.set_defaults(**VARY_DECODING)


def add_variation_options(parser) -> None:
    """How a text run varies a sentence, as `vaekit vary` does it (also used by `raters export`, so that a
    rating sheet rates what vary writes): the method, the edit's settings, and decoding for --method decode."""
    from ..variations import (
        DEFAULT_CHANGE,
        EDIT_CANDIDATES,
        EDIT_DELETE,
        EDIT_KEEP_PENALTY,
        EDIT_KEEP_UNKNOWN,
        EDIT_TEMPERATURE,
        VARY_METHODS,
    )

    parser.add_argument("--change", type=finite(0), default=DEFAULT_CHANGE,
                        help="the fidelity knob: share of the sentence's words each variation rewrites (0.1: a word "
                             "or two; 1: every word)")
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
    add_decode_options(parser, "decoding (text; with --method decode)", repetition_control=True)


def variation_config(args):
    """The EditConfig (--method edit) or DecodeConfig (--method decode) of add_variation_options' options;
    the decoding options are checked whichever method runs, so a bad value is an error either way."""
    from ..editing import EditConfig

    decoding = decode_config(args)
    if args.method == "decode":
        return decoding
    return EditConfig(args.change, args.candidates, args.edit_temperature, args.keep_penalty, args.delete,
                      args.keep_unknown)


def decode_config(args):
    """The DecodeConfig of the options add_decode_options added."""
    from ..generate import DecodeConfig

    return DecodeConfig(args.strategy, args.beam_size, args.top_k, args.top_p, args.decode_temperature,
                        no_repeat_ngram=args.no_repeat_ngram, repetition_penalty=args.repetition_penalty)


def add_compute_options(parser, precision: bool = True, batch_size: bool = True, seed: bool = False) -> None:
    """Where and how a verb computes with a run, alike for every verb: --device, --threads, and where they
    apply --precision, --batch-size and --seed. An option the verb defines itself stays its own."""
    have = parser._option_string_actions
    group = parser.add_argument_group("computing")
    if "--device" not in have:
        group.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    if "--threads" not in have:
        group.add_argument("--threads", type=whole(0, 1024), default=0,
                           help="CPU threads for torch; 0 = torch's default")
    if precision and "--precision" not in have:
        group.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                           help="autocast for encoding and decoding (scores stay fp32)")
    if batch_size and "--batch-size" not in have:
        group.add_argument("--batch-size", type=whole(1), help="examples per forward pass (default 1000)")
    if seed and "--seed" not in have:
        group.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")


def add_resume_options(parser) -> None:
    """What a resumed run may change (api.RESUME_SETTINGS): where it runs, not what it learns."""
    group = parser.add_argument_group("where it runs (the run's own settings by default)")
    group.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    group.add_argument("--threads", type=whole(0, 1024), help="CPU threads for torch; 0 = torch's default")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="the per-batch progress bar")


def add_nproc_option(parser) -> None:
    parser.add_argument("--nproc", type=whole(1, 1024), default=1,
                        help="data-parallel processes on this machine (DDP; gloo on CPU, nccl with one GPU "
                             "each); --batch-size stays the global batch. Several machines: torchrun")

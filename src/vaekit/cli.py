"""The `vaekit` command line. Options for data, model and training come from the config dataclasses,
so the CLI and the Python API cannot drift apart."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path

from .errors import MAX_OUTPUTS, VaekitError

KINDS = ("image", "text", "tabular")
RUN_HELP = "a run directory written by vaekit train"
COLUMN_HELP = "text runs given a CSV: the column of sentences, a header name or 0-based index (default: the run's)"
DATA_DIR_HELP = "where named data sets (mnist, ptb, ...) are looked up (default: the run's, else $VAEKIT_DATA)"
DERIVED = ("image_shape", "vocab_size", "max_len", "n_features")  # model settings the data decides
NOT_TRAIN_OPTIONS = ("trainable",)  # set by vaekit refine, not by a new run
REFINE_OPTIONS = ("epochs", "batch_size", "lr", "free_bits", "precision", "device", "threads", "progress")


# ---- numeric options ------------------------------------------------------------------------------
def _whole(minimum: int = 1, maximum: int | None = None):
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


def _finite(minimum: float | None = None):
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


def _or_none(kind):
    """argparse type: `kind`, or None for the word "none" (a setting whose default is not None)."""
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)
    parse.__name__ = kind.__name__  # argparse's "invalid int value: ..."
    return parse


def config_from_args(cls, args, skip=()):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name not in skip}
    return cls(**values)


def _model_fields(kind: str) -> dict:
    from .models import MODELS

    fields = {}
    for name, (cls, _) in sorted(MODELS.items()):
        if cls.kind == kind:
            hints = typing.get_type_hints(cls.Config)
            for f in dataclasses.fields(cls.Config):
                doc = field_docs(cls.Config).get(f.name, "")
                _, models, docs = fields.get(f.name, (None, [], []))
                fields[f.name] = (hints[f.name], models + [name], docs + ([doc] if doc and doc not in docs else []))
    return fields


def _add_model_options(parser, kind: str, default: str):
    from .models import model_names

    group = parser.add_argument_group("model (defaults: the chosen model's own)")
    seed = {"image": "seed", "text": "text-seed"}.get(kind)
    group.add_argument("--model", default=default, choices=model_names(kind),
                       help=(f"'{seed}' is the design document's architecture; " if seed else "")
                       + f"'{default}' the default")
    for name, (hint, models, docs) in _model_fields(kind).items():
        if name in DERIVED or (kind == "text" and name == "max_len"):
            continue
        kind_, nargs, is_bool = _option_type(hint)
        flag = "--" + name.replace("_", "-")
        help_ = " ".join(docs + [f"[{', '.join(models)}]"]).replace("%", "%%")
        if is_bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            group.add_argument(flag, type=kind_, nargs=nargs, default=None, help=help_)


# ---- commands -----------------------------------------------------------------------------------
def _default_out(kind: str, data: str) -> Path:
    """runs/<kind>-<data>, numbered so a repeated command never touches an earlier run."""
    return _unused(Path("runs") / f"{kind}-{Path(data.split(':')[0]).stem or 'data'}")


def _unused(stem: Path) -> Path:
    """stem, or stem-2, stem-3, ...: the first that does not exist."""
    out, i = stem, 1
    while out.exists():
        i += 1
        out = stem.with_name(f"{stem.name}-{i}")
    return out


def cmd_train(args) -> None:
    from . import api
    from .train import TrainConfig

    if args.resume:
        if not args.out:
            raise VaekitError("--resume needs --out RUN (the run to continue)")
        if (code := _launch(args, ["--out", args.out])) is not None:
            return code
        # What was typed about the model, for resume to check against the run (it continues the
        # run's own model): the kind, --model when given, the model options given.
        model = args.model if args.model != api._job(args.kind).DEFAULT_MODEL or any(
            a == "--model" or a.startswith("--model=") for a in args.argv) else None
        model_options = {n: getattr(args, n) for n in _model_fields(args.kind)
                         if n not in DERIVED and getattr(args, n, None) is not None}
        api.resume(args.out, epochs=args.epochs_given, kind=args.kind, model=model, model_options=model_options)
        print(f"done: {args.out}{_kept_epoch(args.out)}")
        return
    job = api._job(args.kind)
    data = config_from_args(job.DataConfig, args)
    train = config_from_args(TrainConfig, args, skip=NOT_TRAIN_OPTIONS)
    model_options = {n: getattr(args, n) for n in _model_fields(args.kind)
                     if n not in DERIVED and getattr(args, n, None) is not None}
    if args.kind == "text":
        from .tokenizer import TokenizerConfig

        model_options["tokenizer"] = config_from_args(TokenizerConfig, args)
    out = Path(args.out) if args.out else _default_out(args.kind, data.data)
    if (code := _launch(args, ["--out", str(out)])) is not None:  # children share this one run directory
        return code
    run = api.train(data, out, args.model, train, overwrite=args.overwrite, **model_options)
    last = run.path / "metrics.jsonl"
    if not run_is_main():
        return
    print(f"done: {run.path}{_kept_epoch(run.path)}  (metrics: {last}, plots: {run.path / 'plots'}, "
          f"TensorBoard: tensorboard --logdir {run.path / 'tb'})")


def _kept_epoch(run) -> str:
    """", weights of epoch N (best validation -ELBO X)" for a run that kept its best epoch, else ""."""
    from . import runs

    lines = (Path(run) / runs.METRICS).read_text().splitlines()
    history = [json.loads(line) for line in lines]
    if not history or "best_epoch" not in history[-1]:
        return ""
    best = history[history[-1]["best_epoch"] - 1]
    return f", weights of epoch {best['epoch']} of {len(history)} (best validation -ELBO {best['val_loss']:.2f})"


def cmd_refine(args) -> None:
    from . import api, runs

    source = Path(args.run)
    runs.read_config(source)  # not a run ("", "/"): refused before a default --out is named after it
    out = Path(args.out) if args.out else _unused(source.with_name(source.name + "-refined"))
    api.refine(source, out, overwrite=args.overwrite, **{name: getattr(args, name) for name in REFINE_OPTIONS})
    print(f"done: {out}{_kept_epoch(out)}")


def cmd_resume(args) -> None:
    from . import api

    if (code := _launch(args, [])) is not None:
        return code
    api.resume(args.run, epochs=args.epochs)
    if run_is_main():
        print(f"done: {args.run}{_kept_epoch(args.run)}")


def run_is_main() -> bool:
    """False in the processes of a distributed job other than rank 0 (they stay quiet)."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _launch(args, extra: list[str]) -> int | None:
    """With --nproc N (N > 1): rerun this command in N processes (vaekit.distributed) and return
    their exit code; None when this process should do the work itself."""
    import os

    if getattr(args, "nproc", 1) <= 1 or "WORLD_SIZE" in os.environ:
        return None
    from . import distributed

    argv = _without_nproc(args.argv) + extra  # a repeated --out: argparse keeps the last, the same one
    return distributed.launch_local(args.nproc, argv, getattr(args, "device", "auto") or "auto")


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def cmd_summary(args) -> None:
    from .models import build_model
    from .summary import model_summary

    if args.run:
        from . import api

        if args.model or args.image_shape or args.latent_dim:
            raise VaekitError("give a run or model options (--model, --image-shape, --latent-dim), not both")
        print(model_summary(api.load(args.run).model))
        return
    options = {"image_shape": tuple(args.image_shape) if args.image_shape else None, "latent_dim": args.latent_dim}
    print(model_summary(build_model(args.model or "conv", **{k: v for k, v in options.items() if v is not None})))


def _output(path: str | None, default: Path, overwrite: bool, companions=lambda out: []) -> Path:
    """Where to write a result: never over an existing file the user named, unless told to; nor over
    the files written beside it (`companions(out)`: e.g. embed's OUT_latent.png, sample's OUT.npy)."""
    out = Path(path) if path else default
    if path and out.is_dir():
        raise VaekitError(f"{out} is a folder; --out takes a file name here")
    if path and not overwrite:
        for target in [out, *companions(out)]:
            if target.exists():
                raise VaekitError(f"{target} exists; pass --overwrite to replace it"
                                  + (f" (it would be written beside {out})" if target != out else ""))
    if not out.parent.is_dir():
        raise VaekitError(f"folder {out.parent} does not exist")
    return out


def _load_run(args, **options):
    """The run at args.run. --data-dir (the commands that read data) replaces where it looks up named data
    sets: by default the folder it was trained from, saved in its config.json, else $VAEKIT_DATA;
    --column, the CSV column of a text run's sentences (by default the one it was trained from)."""
    from . import api

    return api.load(args.run, **options).read_from(getattr(args, "data_dir", None), getattr(args, "column", None))


def _images(run, source: str, limit: int | None = None):
    from .image import read_images

    images = read_images(source, run.data_config, default_split="test")
    if limit is not None:
        images.x, images.y = images.x[:limit], None if images.y is None else images.y[:limit]
    return images


def cmd_sample(args) -> None:
    import numpy as np

    from . import api, visual

    run = api.load(args.run)
    if run.kind == "text":
        _print_sentences(run.sample(args.n, seed=args.seed, temperature=args.temperature,
                                    config=_decode_config(args)), args)
        return
    if run.kind == "tabular":
        _write_rows(run, run.sample(args.n, seed=args.seed, temperature=args.temperature), args, "samples.csv")
        return
    out = _output(args.out, run.path / "plots" / "samples.png", args.overwrite, lambda o: [o.with_suffix(".npy")])
    x = run.sample(args.n, seed=args.seed, temperature=args.temperature)
    grid = visual.image_grid(__import__("torch").from_numpy(x))
    visual.save_image(grid, out, max(1, 400 // grid.shape[0]))
    np.save(out.with_suffix(".npy"), x)
    print(f"wrote {out} and {out.with_suffix('.npy')} ({args.n} samples, shape {x.shape[1:]})")


def cmd_reconstruct(args) -> None:
    import torch

    from . import visual

    run = _load_run(args)
    if run.kind == "text":
        from .text import read_texts

        sentences = read_texts(args.data, run.data_config, default_split="test")[:args.n]
        outputs = run.reconstruct(sentences, _decode_config(args))
        _print_sentences([f"{a}\t{b}" for a, b in zip(sentences, outputs)], args, header="input\treconstruction")
        return
    if run.kind == "tabular":
        _write_rows(run, run.reconstruct(run.read(args.data)[0][:args.n]), args, "reconstruct.csv")
        return
    out = _output(args.out, run.path / "plots" / "reconstruct.png", args.overwrite)
    images = _images(run, args.data, args.n)
    x = run.prepare(images.x).cpu()
    r = torch.from_numpy(run.reconstruct(images.x))
    grid = visual.image_grid(torch.stack([x, r], 1).flatten(0, 1), nrow=2 * min(8, len(x)))
    visual.save_image(grid, out, max(1, 400 // grid.shape[1]))
    print(f"wrote {out} (each input beside its reconstruction, {len(x)} images)")


def _write_rows(run, rows, args, name: str) -> None:
    """Tabular rows (raw units) as CSV with the run's column names, inside the run unless --out."""
    import csv
    import io

    from .runs import atomic_write

    out = _output(args.out, run.path / name, args.overwrite)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(run.scaler.columns)
    writer.writerows([[f"{v:.6g}" for v in row] for row in rows])
    atomic_write(out, buffer.getvalue().encode())
    print(f"wrote {out} ({len(rows)} rows of {rows.shape[1]} features, in the data's own units)")


def cmd_embed(args) -> None:
    from .embedding import companion_paths, embed

    run = _load_run(args, precision=args.precision)
    out = _output(args.out, run.path / "embedding.npy", args.overwrite,
                  lambda o: companion_paths(o, args.view, run.model.latent_dim))
    for line in embed(run, args.data, out, args.view, args.limit):
        print(line)


def cmd_anomalies(args) -> None:
    from . import api
    from .anomaly import report

    if args.contamination is not None and args.threshold is not None:
        raise VaekitError("give --contamination or --threshold, not both")
    run = _load_run(args)
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()) and not args.overwrite:
            raise VaekitError(f"{out} exists and is not empty; pass --overwrite to write into it")
    else:
        out, i = run.path / "anomalies", 1
        while out.exists():
            i += 1
            out = run.path / f"anomalies-{i}"
    method = args.score or api._job(run.kind).DEFAULT_SCORE
    result = report(run, args.data, out, args.contamination, args.threshold, method, args.k, args.n, args.limit)
    for line in result["lines"] or []:
        print(line)
    if result.get("unknown_words", "0 ").split()[0] != "0":
        print(f"vaekit: note: {result['unknown_words']} words are not in the run's vocabulary (read as <unk>)",
              file=sys.stderr)
    how = (f"contamination {result['contamination']} of held-out scores" if args.threshold is None
           else "--threshold")
    print(f"{result['flagged']} of {result['n']} flagged below {result['threshold']:.3f} (score {method}, {how}); "
          f"wrote {out}/scores.csv, histogram.png"
          + (", most_anomalous.png" if run.kind == "image" else "")
          + (", most_anomalous.txt" if run.kind == "text" else ""))


def cmd_interpolate(args) -> None:
    import numpy as np
    import torch

    from . import visual

    run = _load_run(args)
    if run.kind == "text":
        if len(args.sentences) != 2:
            raise VaekitError('give two sentences: vaekit interpolate RUN "first sentence" "second sentence"')
        _print_sentences(run.interpolate(*args.sentences, steps=args.steps, config=_decode_config(args)), args)
        return
    if run.kind == "tabular":
        raise VaekitError("interpolate works on image and text runs; for tabular runs use embed or sample")
    if not args.data:
        raise VaekitError("give the images with --data (and two of them with --index A B)")
    out = _output(args.out, run.path / "plots" / "interpolate.png", args.overwrite)
    images = _images(run, args.data)
    for i in args.index:
        if not 0 <= i < len(images.x):
            raise VaekitError(f"index {i} is out of range: {args.data} has {len(images.x)} images")
    z = run.encode(images.x[list(args.index)])
    t = np.linspace(0, 1, args.steps)[:, None]
    path = (1 - t) * z[0] + t * z[1]  # (steps, D): a straight line between the two codes
    grid = visual.image_grid(torch.from_numpy(run.decode(path)), nrow=args.steps)
    visual.save_image(grid, out, max(1, 600 // grid.shape[1]))
    print(f"wrote {out} ({args.steps} steps from image {args.index[0]} to image {args.index[1]})")


def cmd_manifold(args) -> None:
    from . import api, visual

    run = api.load(args.run)
    if run.kind != "image":
        raise VaekitError("the manifold plot draws images; for text and tabular runs use sample or embed")
    if run.model.latent_dim != 2:
        raise VaekitError(f"the manifold plot needs a 2-D latent space; this run has {run.model.latent_dim}")
    out = _output(args.out, run.path / "plots" / "manifold.png", args.overwrite)
    visual.manifold(run.model, out, n=args.n, span=args.span)
    print(f"wrote {out} ({args.n}x{args.n} decoded grid over [-{args.span}, {args.span}]^2)")


def _decode_config(args):
    from .generate import DecodeConfig

    return DecodeConfig(args.strategy, args.beam_size, args.top_k, args.top_p, args.decode_temperature)


def _print_sentences(lines: list[str], args, header: str | None = None) -> None:
    """Print sentences; with --out also write them, one per line (never over a user's file)."""
    out = _output(args.out, Path(args.out), args.overwrite) if args.out else None  # refused before printing
    for line in lines:
        print(line)
    if out:
        from .runs import atomic_write

        atomic_write(out, ("\n".join(([header] if header else []) + lines) + "\n").encode())
        print(f"wrote {out}")


def cmd_vary(args) -> None:
    from . import api

    run = api.load(args.run)
    if run.kind != "text":
        raise VaekitError("vary works on text runs; for images use sample, reconstruct or interpolate")
    unknown = run.unknown_words(args.sentence)
    if unknown:
        print(f"vaekit: note: not in the vocabulary, read as <unk>: {', '.join(unknown)}", file=sys.stderr)
    if not run.tokenizer.encode(args.sentence)[:-1] or len(unknown) == len(run.tokenizer.tokenize(args.sentence)):
        print("vaekit: note: the sentence has no known words; variations come from an uninformed code",
              file=sys.stderr)
    if (tokens := len(run.tokenizer.encode(args.sentence))) > run.model.config.max_len:
        print(f"vaekit: note: the sentence has {tokens} tokens (with <eos>); the run reads only its first "
              f"{run.model.config.max_len}, the longest it was trained on", file=sys.stderr)
    _print_sentences(run.vary(args.sentence, args.n, args.spread, _decode_config(args), seed=args.seed), args)


def cmd_evaluate(args) -> None:
    from .evaluation import EvalConfig, evaluate

    settings = config_from_args(EvalConfig, args)
    result = evaluate(args.run, args.data, out=args.out, overwrite=args.overwrite, data_dir=args.data_dir,
                      column=args.column, device=args.device, **vars(settings))
    width = max(map(len, result["metrics"]), default=0) + 2
    for name, m in result["metrics"].items():
        value = f"{m['value']:.4g}" if isinstance(m["value"], float) else m["value"]
        print(f"{name:<{width}}{value!s:>12}  {m['unit']}")


def cmd_compare(args) -> None:
    from .evaluation_report import compare

    table = compare(args.a, args.b)
    print(table, end="")
    if args.out:
        from .runs import atomic_write

        atomic_write(_output(args.out, Path(args.out), args.overwrite), table.encode())
        print(f"wrote {args.out}")
def cmd_raters_export(args) -> None:
    from .raters import export_runs

    paths = export_runs([args.run, *([args.run_b] if args.run_b else [])], args.data, args.out, args.n,
                        args.variations, args.seed, args.spread, _decode_config(args), column=args.column)
    print(f"wrote {paths['csv']} and {paths['html']} for the raters; keep {paths['key']} from them "
          f"(it says which run wrote each output)")


def cmd_raters_summarise(args) -> None:
    from .raters import format_summary, summarise

    summary = summarise(args.ratings, args.key, args.allow_missing)
    print(format_summary(summary))
    if args.json:
        from .runs import write_json

        write_json(_output(args.json, Path(args.json), args.overwrite), summary)
        print(f"wrote {args.json}")


def _add_decode_options(parser) -> None:
    group = parser.add_argument_group("decoding (text)")
    group.add_argument("--strategy", default="greedy", choices=("greedy", "beam", "sample"))
    group.add_argument("--beam-size", type=int, default=5)
    group.add_argument("--top-k", type=int, default=0)
    group.add_argument("--top-p", type=float, default=1.0)
    group.add_argument("--decode-temperature", type=float, default=1.0, help="softmax temperature when sampling")


def cmd_export(args) -> None:
    from . import api, export

    if not args.onnx:
        raise VaekitError("choose a format: vaekit export RUN --onnx")
    manifest = export.export_onnx(args.run, args.out, args.overwrite)
    out = Path(args.out) if args.out else Path(args.run) / "onnx"
    for graph in manifest["graphs"].values():
        ins = ", ".join(i["name"] for i in graph["inputs"])
        outs = ", ".join(o["name"] for o in graph["outputs"])
        print(f"wrote {out / graph['file']}: ({ins}) -> ({outs})")
    try:
        diffs = export.max_difference(api.load(args.run).model, out)
        print(f"checked in onnxruntime: max |onnxruntime - torch| = {max(diffs.values()):.2g}")
    except VaekitError as e:  # no onnxruntime here: the export itself is fine
        print(f"vaekit: note: not checked ({e})", file=sys.stderr)
    print(f"wrote {out / 'manifest.json'}")


def _add_nproc_option(parser) -> None:
    parser.add_argument("--nproc", type=_whole(1, 1024), default=1,
                        help="data-parallel processes on this machine (DDP; gloo on CPU, nccl with one GPU "
                             "each); --batch-size stays the global batch. Several machines: torchrun")


# ---- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .anomaly import METHODS
    from .train import TrainConfig

    parser = argparse.ArgumentParser(
        prog="vaekit", epilog="`vaekit COMMAND -h` lists a command's options; `vaekit train image` trains on "
        "scikit-learn's bundled digits with no download.",
        description="Variational autoencoders for images, text and tables: train one into a run directory, "
                    "then sample, reconstruct, vary sentences, embed, score anomalies, evaluate and export it.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a VAE into a run directory")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    from . import image, tabular, text

    for job in (image, text, tabular):
        kind, data_cls, default_model = job.KIND, job.DataConfig, job.DEFAULT_MODEL
        q = kinds.add_parser(kind, help=f"train {'an' if kind == 'image' else 'a'} {kind} VAE")
        q.add_argument("--out", help="run directory (default: runs/<kind>-<data>, never reused)")
        q.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
        q.add_argument("--resume", action="store_true", help="continue the run at --out from its checkpoint")
        add_config_options(q, data_cls, group_title="data")
        if kind == "text":
            from .tokenizer import TokenizerConfig

            add_config_options(q, TokenizerConfig, group_title="tokenizer")
        _add_model_options(q, kind, default_model)
        add_config_options(q, TrainConfig, skip=NOT_TRAIN_OPTIONS, group_title="training",
                           defaults=job.TRAIN_DEFAULTS)
        _add_nproc_option(q)
        q.set_defaults(func=cmd_train, **job.TRAIN_DEFAULTS)

    p = sub.add_parser("resume", help="continue a run from its last checkpoint")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--epochs", type=int, help="new total number of epochs")
    _add_nproc_option(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("refine", help="fit a trained run's encoder again against its fixed decoder, into "
                       "a new run (narrows the amortisation gap: a lower -ELBO for the same decoder)")
    p.add_argument("run", help="the trained run to start from (left as it is)")
    p.add_argument("--out", help="the new run (default: RUN-refined, never reused)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    from .train import REFINE_DEFAULTS

    add_config_options(p, TrainConfig, skip=[f.name for f in dataclasses.fields(TrainConfig)
                                             if f.name not in REFINE_OPTIONS], use_defaults=False,
                       group_title="training (the lr is constant)",
                       defaults={name: "the source run's" for name in REFINE_OPTIONS} | REFINE_DEFAULTS)
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("summary", help="print a model's layers, output shapes and parameters")
    p.add_argument("run", nargs="?", help="a run directory (else the model given by the options below)")
    p.add_argument("--model", help="a registered model (default: conv), with its own defaults")
    p.add_argument("--image-shape", type=_whole(1), nargs=3, metavar=("C", "H", "W"), help="image models")
    p.add_argument("--latent-dim", type=_whole(1))
    p.set_defaults(func=cmd_summary)

    def use_command(name, help_, func, data=True, out_help="output file (default: inside the run directory)"):
        q = sub.add_parser(name, help=help_)
        q.add_argument("run", help=RUN_HELP)
        if data:
            q.add_argument("--data", required=True, help="as the run was trained on: images (digits, mnist[:test], "
                           "a folder, .npy/.npz, IDX), sentences (a text file, a CSV with --column, ptb:test) or a "
                           "table (.csv, .npy, iris, wine, breast-cancer)")
            q.add_argument("--data-dir", help=DATA_DIR_HELP)
            q.add_argument("--column", help=COLUMN_HELP)
        q.add_argument("--out", help=out_help)
        q.add_argument("--overwrite", action="store_true", help="replace what is at --out")
        q.set_defaults(func=func)
        return q

    q = use_command("sample", "decode draws from the prior (images: PNG grid + .npy; text: sentences)",
                    cmd_sample, data=False)
    q.add_argument("-n", type=_whole(1, MAX_OUTPUTS), default=64)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--temperature", type=_finite(0), default=1.0, help="scale of the prior draws")
    _add_decode_options(q)
    q = use_command("reconstruct", "inputs beside their reconstructions (images: PNG; text: lines)",
                    cmd_reconstruct)
    q.add_argument("-n", type=_whole(1), default=16, help="how many inputs (the first N)")
    _add_decode_options(q)
    q = use_command("vary", "variations of a given sentence", cmd_vary, data=False)
    q.add_argument("sentence", help="the sentence to vary (quote it); words outside the vocabulary are reported")
    q.add_argument("-n", type=_whole(1, MAX_OUTPUTS), default=5)
    q.add_argument("--spread", type=_finite(0), default=1.0,
                   help="scale of the posterior's standard deviation (0: always the mean)")
    q.add_argument("--seed", type=int, default=0)
    _add_decode_options(q)
    q = use_command("embed", "latent means to .npy or .csv, and a 2-D view coloured by label", cmd_embed)
    q.add_argument("--limit", type=_whole(1))
    q.add_argument("--view", default="pca", choices=("pca", "umap", "parametric"),
                   help="2-D view of a latent space of more than 2 dimensions: umap needs umap-learn; "
                        "parametric fits a map once (saved in RUN/embedding_map) and reuses it for new data")
    q.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="bf16: about 4x faster encoding on CPUs with native bf16, means within about 1%%")
    q = use_command("anomalies", "score data (log-likelihood, reconstruction error or distance to the training "
                    "codes); flag anomalies (CSV, histogram, examples)",
                    cmd_anomalies)
    q.add_argument("--contamination", type=float,
                   help="share of held-out (validation) data to flag; sets the threshold (default 0.01)")
    q.add_argument("--threshold", type=_finite(), help="flag scores below this value instead")
    q.add_argument("--score", choices=METHODS,
                   help="elbo: ELBO averaged over K draws; iw: the importance-weighted bound with K samples; "
                        "reconstruction (image/tabular): minus the squared reconstruction error; knn: minus the "
                        "distance to the nearest training codes; reconstruction+knn (image/tabular): both, "
                        "standardised. Default: reconstruction+knn for image runs (the best on one-class "
                        "MNIST: AUROC 98.5; iw after 10 epochs: 89.0), elbo for text and tabular runs")
    q.add_argument("--k", type=_whole(1), default=10, help="posterior samples per example")
    q.add_argument("-n", type=_whole(0), default=16, help="how many of the most anomalous to show")
    q.add_argument("--limit", type=_whole(1))
    q = use_command("interpolate", "decode a straight line between two inputs' codes", cmd_interpolate,
                    data=False)
    q.add_argument("sentences", nargs="*", help="text runs: the two sentences")
    q.add_argument("--data", help="image runs: the images (with --index A B)")
    q.add_argument("--data-dir", help=DATA_DIR_HELP)
    q.add_argument("--index", type=int, nargs=2, default=(0, 1), metavar=("A", "B"))
    q.add_argument("--steps", type=_whole(2, MAX_OUTPUTS), default=10)
    _add_decode_options(q)
    q = use_command("export", "the encoder and decoder as ONNX graphs (RUN/onnx)", cmd_export, data=False,
                    out_help="folder for the graphs (default: RUN/onnx)")
    q.add_argument("--onnx", action="store_true", help="ONNX graphs with a dynamic batch axis + manifest.json")
    q = use_command("manifold", "decoded grid of a 2-D latent space", cmd_manifold, data=False)
    q.add_argument("-n", type=_whole(1, 100), default=20, help="images per side of the grid")
    q.add_argument("--span", type=_finite(0), default=2.0, help="the grid covers [-span, span] in each dimension")
    _add_evaluation_commands(sub)

    p = sub.add_parser("raters", help="rating sheets for human judges: export, then summarise their scores")
    raters = p.add_subparsers(dest="raters_command", required=True, metavar="ACTION")
    q = raters.add_parser("export", help="CSV + HTML sheet of shuffled, unlabeled variations (one or two runs)")
    q.add_argument("run", help="a text run")
    q.add_argument("run_b", nargs="?", help="a second text run, mixed in blind")
    q.add_argument("--data", required=True, help="the input sentences: a text file, a CSV (--column), ptb:test")
    q.add_argument("--column", help=COLUMN_HELP)
    q.add_argument("-n", type=_whole(1), default=20, help="number of input sentences (drawn at random with --seed)")
    q.add_argument("--variations", type=_whole(1, 1000), default=3, help="outputs per input and run")
    q.add_argument("--out", required=True, help="a new folder for sheet.csv, sheet.html and key.json")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--spread", type=_finite(0), default=1.0, help="as in vary")
    _add_decode_options(q)
    q.set_defaults(func=cmd_raters_export)
    q = raters.add_parser("summarise", help="per-run means of the raters' scores (+ a paired test for two runs)")
    q.add_argument("ratings", nargs="+", help="filled CSV(s), or the sheet's folder holding ratings*.csv")
    q.add_argument("--key", help="the key.json (default: beside the first CSV)")
    q.add_argument("--allow-missing", action="store_true", help="skip empty scores instead of refusing them")
    q.add_argument("--json", help="also write the summary to this JSON file")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_raters_summarise)
    return parser


def _add_evaluation_commands(sub) -> None:
    from .evaluation import EvalConfig

    q = sub.add_parser("evaluate", help="likelihood bounds, latent health and probes -> evaluation.json + .md")
    q.add_argument("run", help=RUN_HELP)
    q.add_argument("--data", required=True,
                   help="as for training: digits, mnist:test, a folder, ptb:test, a text file, a table")
    q.add_argument("--data-dir", help=DATA_DIR_HELP)
    q.add_argument("--column", help=COLUMN_HELP)
    q.add_argument("--out", help="folder for the report (default: the run directory)")
    q.add_argument("--overwrite", action="store_true",
                   help="replace evaluation.json (default: a new evaluation-N.json beside earlier ones)")
    q.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_config_options(q, EvalConfig, group_title="evaluation (k default: 1000 images and tables, 500 text)")
    q.set_defaults(func=cmd_evaluate)
    q = sub.add_parser("compare", help="two evaluations side by side (runs or evaluation.json files)")
    q.add_argument("a", help="a run directory or an evaluation.json")
    q.add_argument("b", help="the other one")
    q.add_argument("--out", help="also write the Markdown table to this file")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_compare)


def main(argv: list[str] | None = None) -> int:
    import logging

    from .train import TrainingInterrupted

    # Downloads and other long waits report through the "vaekit" logger.
    logging.basicConfig(level=logging.WARNING, format="vaekit: %(message)s")
    logging.getLogger("vaekit").setLevel(logging.INFO)
    import warnings

    warnings.formatwarning = lambda message, *args, **kwargs: f"vaekit: warning: {message}\n"
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    # Remember whether --epochs was typed, so `train --resume` only changes it when asked.
    args.epochs_given = args.epochs if any(a.startswith("--epochs") for a in argv) else None \
        if hasattr(args, "epochs") else None
    try:
        code = args.func(args)  # None, or the exit code of processes it launched
        sys.stdout.flush()  # a reader that went away shows up here, inside the try, not at exit
    except BrokenPipeError:
        # `vaekit ... | head`: stop quietly, and point stdout at devnull so Python's own flush at exit
        # does not fail again (the recipe of the Python docs, signal module, "Note on SIGPIPE").
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except VaekitError as e:
        from . import distributed

        if not distributed.report_child_error(str(e)):  # a --nproc child: the launcher prints it once
            print(f"vaekit: error: {distributed.error_prefix()}{e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        if run_is_main():  # one message from a distributed job
            print(f"vaekit: interrupted: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if run_is_main():
            print("vaekit: interrupted", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())

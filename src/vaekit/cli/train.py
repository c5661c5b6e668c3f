"""`vaekit train KIND`: train a VAE into a run directory (or, with --resume, continue one)."""
from __future__ import annotations

from pathlib import Path

from ..errors import VaekitError
from .common import kept_epoch, launch, run_is_main, unused
from .options import add_config_options, add_model_options, add_nproc_option, config_from_args, model_options

NOT_TRAIN_OPTIONS = ("trainable",)  # set by vaekit refine, not by a new run


def register(subparsers):
    from .. import image, tabular, text

    parser = subparsers.add_parser("train", help="train a VAE into a run directory")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for job in (image, text, tabular):
        _register_kind(kinds, job)
    return parser


def _register_kind(kinds, job) -> None:
    """`vaekit train KIND`'s options: the job's data, (text) tokenizer, model and training settings."""
    from ..train import TrainConfig

    kind = job.KIND
    parser = kinds.add_parser(kind, help=f"train {'an' if kind == 'image' else 'a'} {kind} VAE")
    parser.add_argument("--out", help="run directory (default: runs/<kind>-<data>, never reused)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    parser.add_argument("--resume", action="store_true", help="continue the run at --out from its checkpoint")
    add_config_options(parser, job.DataConfig, group_title="data")
    if kind == "text":
        from ..tokenizer import TokenizerConfig

        add_config_options(parser, TokenizerConfig, group_title="tokenizer")
    add_model_options(parser, kind, job.DEFAULT_MODEL)
    add_config_options(parser, TrainConfig, skip=NOT_TRAIN_OPTIONS, group_title="training",
                       defaults=job.TRAIN_DEFAULTS)
    add_nproc_option(parser)
    parser.set_defaults(**job.TRAIN_DEFAULTS)


def run(args) -> int | None:
    from .. import api
    from ..train import TrainConfig

    if args.resume:
        return _resume(args)
    job = api._job(args.kind)
    data = config_from_args(job.DataConfig, args)
    train = config_from_args(TrainConfig, args, skip=NOT_TRAIN_OPTIONS)
    options = model_options(args, args.kind)
    if args.kind == "text":
        from ..tokenizer import TokenizerConfig

        options["tokenizer"] = config_from_args(TokenizerConfig, args)
    out = Path(args.out) if args.out else _default_out(args.kind, data.data)
    if (code := launch(args, ["--out", str(out)])) is not None:  # children share this one run directory
        return code
    trained = api.train(data, out, args.model, train, overwrite=args.overwrite, **options)
    last = trained.path / "metrics.jsonl"
    if not run_is_main():
        return None
    print(f"done: {trained.path}{kept_epoch(trained.path)}  (metrics: {last}, plots: {trained.path / 'plots'}, "
          f"TensorBoard: tensorboard --logdir {trained.path / 'tb'})")
    return None


def _resume(args) -> int | None:
    """`train KIND --out RUN --resume`: continue RUN, checking what was typed about the model against it."""
    from .. import api

    if not args.out:
        raise VaekitError("--resume needs --out RUN (the run to continue)")
    if (code := launch(args, ["--out", args.out])) is not None:
        return code
    # What was typed about the model, for resume to check against the run (it continues the
    # run's own model): the kind, --model when given, the model options given.
    model = args.model if args.model != api._job(args.kind).DEFAULT_MODEL or any(
        a == "--model" or a.startswith("--model=") for a in args.argv) else None
    # Whether --epochs was typed, so `train --resume` only changes it when asked.
    epochs = args.epochs if any(a.startswith("--epochs") for a in args.argv) else None
    api.resume(args.out, epochs=epochs, kind=args.kind, model=model, model_options=model_options(args, args.kind))
    print(f"done: {args.out}{kept_epoch(args.out)}")
    return None


def _default_out(kind: str, data: str) -> Path:
    """runs/<kind>-<data>, numbered so a repeated command never touches an earlier run."""
    return unused(Path("runs") / f"{kind}-{Path(data.split(':')[0]).stem or 'data'}")

"""`vaekit train KIND`: train a VAE into a run directory (or, with --resume, continue one)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import VaekitError
from .common import kept_epoch, launch, run_is_main, unused
from .options import add_config_options, add_model_options, add_nproc_option, config_from_args, model_options

NOT_TRAIN_OPTIONS = ("trainable",)  # set by vaekit refine, not by a new run


def register(subparsers):
    from .. import modalities

    parser = subparsers.add_parser("train", help="train a VAE into a run directory")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name in modalities.names():  # the built-in kinds and any registered one
        _register_kind(kinds, modalities.get(name))
    return parser


def _register_kind(kinds, modality) -> None:
    """`vaekit train KIND`'s options: the kind's data, its data options (text: tokenizer), model and training."""
    from ..training import TrainConfig

    parser = kinds.add_parser(modality.name, help=f"train {modality.article} {modality.name} VAE")
    parser.add_argument("--out", help="run directory (default: runs/<kind>-<data>, never reused)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    parser.add_argument("--resume", action="store_true", help="continue the run at --out from its checkpoint")
    add_config_options(parser, modality.DataConfig, group_title="data")
    for name, cls in modality.option_configs.items():
        add_config_options(parser, cls, group_title=name)
    add_model_options(parser, modality)
    add_config_options(parser, TrainConfig, skip=NOT_TRAIN_OPTIONS, group_title="training",
                       defaults=modality.train_defaults)
    add_nproc_option(parser)
    parser.set_defaults(**modality.train_defaults)


def run(args) -> int | None:
    from .. import api, modalities
    from ..training import TrainConfig

    if args.resume:
        return _resume(args)
    modality = modalities.get(args.kind)
    data = config_from_args(modality.DataConfig, args)
    for name, value in modality.data_defaults(data, args.model).items():  # the bundled digits' first run
        if not any(a.split("=")[0] == "--" + name.replace("_", "-") for a in args.argv):
            setattr(args, name, value)
    train = config_from_args(TrainConfig, args, skip=NOT_TRAIN_OPTIONS)
    if _typed(args, "epochs") and not _typed(args, "min_steps"):  # --epochs N alone means N epochs
        train = dataclasses.replace(train, min_steps=0)
    options = model_options(args, args.kind)
    for name, cls in modality.option_configs.items():  # text: tokenizer=TokenizerConfig(...)
        options[name] = config_from_args(cls, args)
    out = Path(args.out) if args.out else _default_out(args.kind, data.data)
    if (code := launch(args, ["--out", str(out)])) is not None:  # children share this one run directory
        return code
    trained = api.train(data, out, args.model, train, overwrite=args.overwrite, **options)
    last = trained.path / "metrics.jsonl"
    if not run_is_main():
        return None
    print(f"done: {trained.path}{kept_epoch(trained.path)}  (metrics: {last}, plots: {trained.path / 'plots'}, "
          f"TensorBoard: tensorboard --logdir {trained.path / 'tb'})\nexplore it: vaekit explore {trained.path}")
    return None


def _resume(args) -> int | None:
    """`train KIND --out RUN --resume`: continue RUN, checking what was typed about the model against it."""
    from .. import api, modalities

    if not args.out:
        raise VaekitError("--resume needs --out RUN (the run to continue)")
    if (code := launch(args, ["--out", args.out])) is not None:
        return code
    # What was typed about the model, for resume to check against the run (it continues the
    # run's own model): the kind, --model when given, the model options given.
    model = args.model if args.model != modalities.get(args.kind).default_model or _typed(args, "model") else None
    # Whether --epochs was typed, so `train --resume` only changes it when asked; likewise where the data
    # are now (--data, --data-dir: the run moved) and where it runs (--device, --threads, --progress).
    def typed(name: str):
        return getattr(args, name, None) if _typed(args, name) else None

    data = {name: typed(name) for name in ("data", "val_data", "data_dir") if hasattr(args, name)}
    settings = {name: typed(name) for name in api.RESUME_SETTINGS}
    api.resume(args.out, epochs=typed("epochs"), kind=args.kind, model=model,
               model_options=model_options(args, args.kind), data=data, **settings)
    print(f"done: {args.out}{kept_epoch(args.out)}")
    return None


def _typed(args, name: str) -> bool:
    """Whether the option `name` was typed (--name, --name=..., and --no-progress for progress)."""
    flag = "--" + name.replace("_", "-")
    return any(a == flag or a.startswith(flag + "=") or (name == "progress" and a == "--no-progress")
               for a in args.argv)


def _default_out(kind: str, data: str) -> Path:
    """runs/<kind>-<data>, numbered so a repeated command never touches an earlier run."""
    return unused(Path("runs") / f"{kind}-{Path(data.split(':')[0]).stem or 'data'}")

"""`vaekit resume RUN`: continue a run from its last checkpoint."""
from __future__ import annotations

from .common import kept_epoch, launch, run_is_main
from .options import DATA_DIR_HELP, RUN_HELP, add_nproc_option, add_resume_options


def register(subparsers):
    parser = subparsers.add_parser("resume", help="continue a run from its last checkpoint")
    parser.add_argument("run", help=RUN_HELP)
    parser.add_argument("--epochs", type=int, help="new total number of epochs")
    parser.add_argument("--data", help="where the run's training data are now (they moved); recorded in the run")
    parser.add_argument("--val-data", help="where the run's validation data are now (when it was given one)")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP.replace("default: the run's", "default: the run's own")
                        + "; recorded in the run")
    add_resume_options(parser)
    add_nproc_option(parser)
    return parser


def run(args) -> int | None:
    from .. import api

    if (code := launch(args, [])) is not None:
        return code
    api.resume(args.run, epochs=args.epochs, data=resume_data(args), device=args.device, threads=args.threads,
               progress=args.progress)
    if run_is_main():
        print(f"done: {args.run}{kept_epoch(args.run)}")
    return None


def resume_data(args) -> dict:
    """The data settings typed (the run's data moved): --data, --val-data, --data-dir."""
    return {name: getattr(args, name, None) for name in ("data", "val_data", "data_dir")}

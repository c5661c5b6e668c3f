"""`vaekit resume RUN`: continue a run from its last checkpoint."""
from __future__ import annotations

from .common import kept_epoch, launch, run_is_main
from .options import RUN_HELP, add_nproc_option


def register(subparsers):
    parser = subparsers.add_parser("resume", help="continue a run from its last checkpoint")
    parser.add_argument("run", help=RUN_HELP)
    parser.add_argument("--epochs", type=int, help="new total number of epochs")
    add_nproc_option(parser)
    return parser


def run(args) -> int | None:
    from .. import api

    if (code := launch(args, [])) is not None:
        return code
    api.resume(args.run, epochs=args.epochs)
    if run_is_main():
        print(f"done: {args.run}{kept_epoch(args.run)}")
    return None

"""`vaekit refine RUN`: fit a trained run's encoder again against its fixed decoder, into a new run."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .common import kept_epoch, unused
from .options import add_config_options

REFINE_OPTIONS = ("epochs", "batch_size", "lr", "free_bits", "precision", "device", "threads", "progress")


def register(subparsers):
    from ..training import REFINE_DEFAULTS, TrainConfig

    parser = subparsers.add_parser("refine", help="fit a trained run's encoder again against its fixed decoder, "
                                   "into a new run (narrows the amortisation gap: a lower -ELBO for the same decoder)")
    parser.add_argument("run", help="the trained run to start from (left as it is)")
    parser.add_argument("--out", help="the new run (default: RUN-refined, never reused)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    add_config_options(parser, TrainConfig, skip=[f.name for f in dataclasses.fields(TrainConfig)
                                                  if f.name not in REFINE_OPTIONS], use_defaults=False,
                       group_title="training (the lr is constant)",
                       defaults={name: "the source run's" for name in REFINE_OPTIONS} | REFINE_DEFAULTS)
    return parser


def run(args) -> None:
    from .. import api, runs

    source = Path(args.run)
    runs.read_config(source)  # not a run ("", "/"): refused before a default --out is named after it
    out = Path(args.out) if args.out else unused(source.with_name(source.name + "-refined"))
    api.refine(source, out, overwrite=args.overwrite, **{name: getattr(args, name) for name in REFINE_OPTIONS})
    print(f"done: {out}{kept_epoch(out)}")

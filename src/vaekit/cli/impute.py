"""`vaekit impute RUN --data TABLE`: the table with its missing cells filled in from a tabular run."""
from __future__ import annotations

from pathlib import Path

from .common import destination, load_run
from .options import add_compute_options, add_run_verb, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "impute", "a table's missing cells filled in from a tabular run (each by its "
                          "expected value given the row's other cells)",
                          out_help="output CSV file (default: RUN/imputed.csv)")
    parser.add_argument("-k", "--samples", type=whole(1, 100_000), default=100,
                        help="importance samples per row (MIWAE's estimate; more: steadier, slower)")
    parser.add_argument("--seed", type=int, default=0, help="the samples' seed (the same seed, the same table)")
    parser.add_argument("--draws", type=whole(1, 1000),
                        help="multiple imputation: this many completed tables, each gap drawn from its conditional "
                             "distribution instead of filled with its expected value, one after another in one "
                             "file with a leading 'draw' column (analyse each, pool by Rubin's rules)")
    add_compute_options(parser)
    return parser


def run(args) -> None:
    import numpy as np

    dest = destination(args)
    if args.out:  # a file that is there already is refused before the work, not after it
        dest.path(Path(args.out))
    loaded = load_run(args)
    inputs = loaded.read(args.data)
    gaps = np.isnan(inputs.x)
    filled = loaded.impute(inputs.x, k=args.samples, seed=args.seed, draws=args.draws)
    out = loaded.modality.write_imputed(loaded, args.data, inputs, filled, dest)
    left = int(np.isnan(filled if args.draws is None else filled[0]).sum())
    print(f"filled {int(gaps.sum()) - left} missing cell(s) in {int(gaps.any(1).sum())} of {len(gaps)} rows"
          + (f", {args.draws} draws" if args.draws else "") + f"; wrote {out}"
          + (f" ({left} left empty in column(s) the run does not model)" if left else ""))

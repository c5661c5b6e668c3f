"""`vaekit compare A B`: two evaluations side by side (runs or evaluation.json files)."""
from __future__ import annotations

from pathlib import Path

from ..outputs import output_path


def register(subparsers):
    parser = subparsers.add_parser("compare", help="two evaluations side by side (runs or evaluation.json files)")
    parser.add_argument("a", help="a run directory or an evaluation.json")
    parser.add_argument("b", help="the other one")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    parser.add_argument("--overwrite", action="store_true")
    return parser


def run(args) -> None:
    from ..evaluation_report import compare

    table = compare(args.a, args.b)
    print(table, end="")
    if args.out:
        from ..runs import atomic_write

        atomic_write(output_path(args.out, Path(args.out), args.overwrite), table.encode())
        print(f"wrote {args.out}")

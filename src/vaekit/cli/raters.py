"""`vaekit raters export|summarise`: rating sheets for human judges, then the summary of their scores."""
from __future__ import annotations

from pathlib import Path

from ..outputs import output_path
from .options import COLUMN_HELP, add_variation_options, finite, variation_config, whole


def register(subparsers):
    parser = subparsers.add_parser("raters", help="rating sheets for human judges: export, then summarise their "
                                   "scores")
    actions = parser.add_subparsers(dest="raters_command", required=True, metavar="ACTION")
    _register_export(actions)
    _register_summarise(actions)
    return parser


def _register_export(actions) -> None:
    parser = actions.add_parser("export", help="CSV + HTML sheet of shuffled, unlabeled variations (one or two runs)")
    parser.add_argument("run", help="a text run")
    parser.add_argument("run_b", nargs="?", help="a second text run, mixed in blind")
    parser.add_argument("--data", required=True, help="the input sentences: a text file, a CSV (--column), ptb:test")
    parser.add_argument("--column", help=COLUMN_HELP)
    parser.add_argument("-n", type=whole(1), default=20, help="number of input sentences (drawn at random with "
                        "--seed)")
    parser.add_argument("--variations", type=whole(1, 1000), default=3, help="outputs per input and run")
    parser.add_argument("--out", required=True, help="a new folder for sheet.csv, sheet.html and key.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=finite(0), default=1.0, help="as in vary")
    add_variation_options(parser)  # the sheet rates what `vaekit vary` writes, with the same options


def _register_summarise(actions) -> None:
    parser = actions.add_parser("summarise", help="per-run means of the raters' scores (+ a paired test for two "
                                "runs)")
    parser.add_argument("ratings", nargs="+", help="filled CSV(s), or the sheet's folder holding ratings*.csv")
    parser.add_argument("--key", help="the key.json (default: beside the first CSV)")
    parser.add_argument("--allow-missing", action="store_true", help="skip empty scores instead of refusing them")
    parser.add_argument("--json", help="also write the summary to this JSON file")
    parser.add_argument("--overwrite", action="store_true")


def run(args) -> None:
    {"export": _export, "summarise": _summarise}[args.raters_command](args)


def _export(args) -> None:
    from ..raters import export_runs

    paths = export_runs([args.run, *([args.run_b] if args.run_b else [])], args.data, args.out, args.n,
                        args.variations, args.seed, args.spread, variation_config(args), column=args.column)
    print(f"wrote {paths['csv']} and {paths['html']} for the raters; keep {paths['key']} from them "
          f"(it says which run wrote each output)")


def _summarise(args) -> None:
    from ..raters import format_summary, summarise

    summary = summarise(args.ratings, args.key, args.allow_missing)
    print(format_summary(summary))
    if args.json:
        from ..runs import write_json

        write_json(output_path(args.json, Path(args.json), args.overwrite), summary)
        print(f"wrote {args.json}")

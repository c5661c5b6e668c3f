"""`vaekit evaluate RUN --data DATA`: likelihood bounds, latent health and probes -> evaluation.json + .md."""
from __future__ import annotations

from .options import COLUMN_HELP, DATA_DIR_HELP, RUN_HELP, add_compute_options, add_config_options, config_from_args


def register(subparsers):
    from ..evaluation import EvalConfig

    parser = subparsers.add_parser("evaluate", help="likelihood bounds, latent health and probes -> "
                                   "evaluation.json + .md")
    parser.add_argument("run", help=RUN_HELP)
    parser.add_argument("--data", required=True,
                        help="as for training: digits, mnist:test, a folder, ptb:test, a text file, a table")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--column", help=COLUMN_HELP)
    parser.add_argument("--out", help="folder for the report (default: the run directory)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace evaluation.json (default: a new evaluation-N.json beside earlier ones)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_config_options(parser, EvalConfig, group_title="evaluation (k default: 1000 images and tables, 500 text)")
    add_compute_options(parser, precision=False)
    return parser


def run(args) -> None:
    from ..evaluation import EvalConfig, evaluate

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = config_from_args(EvalConfig, args)
    result = evaluate(args.run, args.data, out=args.out, overwrite=args.overwrite, data_dir=args.data_dir,
                      column=args.column, device=args.device, **vars(settings))
    width = max(map(len, result["metrics"]), default=0) + 2
    for name, m in result["metrics"].items():
        value = f"{m['value']:.4g}" if isinstance(m["value"], float) else m["value"]
        print(f"{name:<{width}}{value!s:>12}  {m['unit']}")

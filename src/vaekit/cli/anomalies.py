"""`vaekit anomalies RUN --data DATA`: score data and flag anomalies (CSV, histogram, examples)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import VaekitError
from .common import load_run
from .options import add_compute_options, add_run_verb, finite, whole

SCORE_HELP = ("elbo: ELBO averaged over K draws; iw: the importance-weighted bound with K samples; reconstruction "
              "(image/tabular): minus the squared reconstruction error; knn: minus the distance to the nearest "
              "training codes; mahalanobis: of the code from the training codes; standardised (image/tabular): "
              "squared residual per feature over its training mean; a+b (a+b+c): the sum of the parts, each "
              "standardised; elbo-per-token (text): the ELBO per token, minus log perplexity, which does not "
              "favour short sentences. "
              "Default: the kind's, chosen without test data in bench/anomaly.py (bench/RESULTS.md): "
              "reconstruction+standardised+knn for images, standardised for tables, elbo-per-token for text")


def register(subparsers):
    from ..anomaly import METHODS

    parser = add_run_verb(subparsers, "anomalies", "score data (log-likelihood, reconstruction error or distance to "
                          "the training codes); flag anomalies (CSV, histogram, examples)",
                          out_help="folder for the report (default: RUN/anomalies, then RUN/anomalies-2, ...)")
    parser.add_argument("--contamination", type=float,
                        help="sets the threshold: the quantile of the scores of the run's held-out (validation) "
                             "split, so about this share of typical data is flagged (default 0.01); a small split "
                             "(36 rows for wine) cannot resolve a small share, and is warned about")
    parser.add_argument("--threshold", type=finite(), help="flag scores below this value instead")
    parser.add_argument("--score", choices=METHODS, help=SCORE_HELP)
    parser.add_argument("--k", type=whole(1), default=10, help="posterior samples per example")
    parser.add_argument("-n", type=whole(0), default=16, help="how many of the most anomalous to show")
    parser.add_argument("--limit", type=whole(1))
    add_compute_options(parser, precision=False, seed=True)
    return parser


def run(args) -> None:
    from ..anomaly import report

    if args.contamination is not None and args.threshold is not None:
        raise VaekitError("give --contamination or --threshold, not both")
    loaded = load_run(args)
    out = _out_folder(args, loaded)
    method = args.score or loaded.modality.default_score
    result = report(loaded, args.data, out, args.contamination, args.threshold, method, args.k, args.n, args.limit,
                    args.seed)
    for line in result["lines"] or []:
        print(line)
    if result.get("unknown_words", "0 ").split()[0] != "0":
        print(f"vaekit: note: {result['unknown_words']} words are not in the run's vocabulary (read as <unk>)",
              file=sys.stderr)
    how = (f"contamination {result['contamination']} of {result['heldout_examples']} held-out scores"
           if args.threshold is None else "--threshold")
    print(f"{result['flagged']} of {result['n']} flagged below {result['threshold']:.3f} (score {method}, {how}); "
          f"wrote {out}/scores.csv, " + ", ".join(("histogram.png", *loaded.modality.anomaly_files)))


def _out_folder(args, run) -> Path:
    """--out (refused when it holds files, unless --overwrite), else a new RUN/anomalies[-N]."""
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()) and not args.overwrite:
            raise VaekitError(f"{out} exists and is not empty; pass --overwrite to write into it")
        return out
    out, i = run.path / "anomalies", 1
    while out.exists():
        i += 1
        out = run.path / f"anomalies-{i}"
    return out

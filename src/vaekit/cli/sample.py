"""`vaekit sample RUN`: decode draws from the prior (images: PNG grid + .npy; text: sentences; tables: CSV rows
drawn from p(x | z), or the decoded means with --mean)."""
from __future__ import annotations

from ..errors import MAX_OUTPUTS
from .common import destination, load_run, output_options
from .options import add_compute_options, add_decode_options, add_run_verb, finite, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "sample", "decode draws from the prior (images: PNG grid + .npy; text: "
                          "sentences; tables: CSV rows drawn from the model)", data=False,
                          out_help="output file (default: images and tables inside the run directory, under the first "
                                   "free name; text runs print, and write the sentences here when given)")
    parser.add_argument("-n", type=whole(1, MAX_OUTPUTS), default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=finite(0), default=1.0, help="scale of the prior draws")
    parser.add_argument("--mean", action="store_true",
                        help="tables: write the decoded means, not rows drawn from p(x | z) (means spread less "
                             "than the data)")
    add_decode_options(parser, repetition_control=True)
    add_compute_options(parser)
    return parser


def run(args) -> None:
    loaded = load_run(args)
    dest = destination(args)  # --out checked before any work
    options = output_options(loaded, args) | ({"mean": True} if args.mean else {})
    samples = loaded.sample(args.n, seed=args.seed, temperature=args.temperature, **options)
    loaded.modality.write_samples(loaded, samples, dest)

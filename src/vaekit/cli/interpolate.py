"""`vaekit interpolate RUN`: decode a straight line between two inputs' codes."""
from __future__ import annotations

from ..errors import MAX_OUTPUTS, VaekitError
from .common import destination, load_run, output_options
from .options import DATA_DIR_HELP, add_compute_options, add_decode_options, add_run_verb, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "interpolate", "decode a straight line between two inputs' codes",
                          data=False)
    parser.add_argument("sentences", nargs="*", help="text runs: the two sentences")
    parser.add_argument("--data", help="image and tabular runs: the data (with --index A B)")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--index", type=int, nargs=2, default=(0, 1), metavar=("A", "B"))
    parser.add_argument("--steps", type=whole(2, MAX_OUTPUTS), default=10)
    add_decode_options(parser, repetition_control=True)
    add_compute_options(parser)
    return parser


def run(args) -> None:
    loaded = load_run(args)
    dest = destination(args)
    a, b, what = _ends(loaded, args)
    outputs = loaded.interpolate(a, b, steps=args.steps, **output_options(loaded, args))
    loaded.modality.write_interpolation(loaded, outputs, dest, what)


def _ends(run, args):
    """The two inputs: typed sentences (text runs), else two examples of --data picked by --index."""
    if run.modality.makes_text:
        if len(args.sentences) != 2:
            raise VaekitError('give two sentences: vaekit interpolate RUN "first sentence" "second sentence"')
        return args.sentences[0], args.sentences[1], f"{args.steps} steps"
    if args.sentences:
        raise VaekitError(f"sentences are for text runs; give the {run.modality.noun} with --data and --index A B")
    if not args.data:
        raise VaekitError(f"give the {run.modality.noun} with --data (and two of them with --index A B)")
    inputs = run.read(args.data)
    for i in args.index:
        if not 0 <= i < len(inputs.x):
            raise VaekitError(f"index {i} is out of range: {args.data} has {len(inputs.x)} examples")
    (i, j), noun = args.index, run.modality.noun.rstrip("s")
    return inputs.x[i], inputs.x[j], f"{args.steps} steps from {noun} {i} to {noun} {j}"

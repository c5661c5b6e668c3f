"""`vaekit reconstruct RUN --data DATA`: inputs beside their reconstructions."""
from __future__ import annotations

from .common import destination, load_run, output_options
from .options import add_compute_options, add_decode_options, add_run_verb, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "reconstruct", "inputs beside their reconstructions (images: PNG; text: "
                          "lines)")
    parser.add_argument("-n", type=whole(1), default=16, help="how many inputs (the first N)")
    add_decode_options(parser)
    add_compute_options(parser)
    return parser


def run(args) -> None:
    loaded = load_run(args)
    dest = destination(args)
    inputs = loaded.read(args.data, args.n)
    outputs = loaded.reconstruct(inputs.x, **output_options(loaded, args))
    loaded.modality.write_reconstructions(loaded, inputs, outputs, dest)

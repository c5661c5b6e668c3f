"""`vaekit interpolate RUN`: decode a straight line between two inputs' codes (images and sentences)."""
from __future__ import annotations

from ..errors import MAX_OUTPUTS, VaekitError
from .common import load_run, output, print_sentences, read_images
from .options import DATA_DIR_HELP, add_decode_options, add_run_verb, decode_config, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "interpolate", "decode a straight line between two inputs' codes",
                          data=False)
    parser.add_argument("sentences", nargs="*", help="text runs: the two sentences")
    parser.add_argument("--data", help="image runs: the images (with --index A B)")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--index", type=int, nargs=2, default=(0, 1), metavar=("A", "B"))
    parser.add_argument("--steps", type=whole(2, MAX_OUTPUTS), default=10)
    add_decode_options(parser)
    return parser


def run(args) -> None:
    loaded = load_run(args)
    if loaded.kind == "text":
        _interpolate_text(loaded, args)
        return
    if loaded.kind == "tabular":
        raise VaekitError("interpolate works on image and text runs; for tabular runs use embed or sample")
    _interpolate_images(loaded, args)


def _interpolate_text(run, args) -> None:
    if len(args.sentences) != 2:
        raise VaekitError('give two sentences: vaekit interpolate RUN "first sentence" "second sentence"')
    print_sentences(run.interpolate(*args.sentences, steps=args.steps, config=decode_config(args)), args)


def _interpolate_images(run, args) -> None:
    import numpy as np
    import torch

    from .. import visual

    if not args.data:
        raise VaekitError("give the images with --data (and two of them with --index A B)")
    out = output(args.out, run.path / "plots" / "interpolate.png", args.overwrite)
    images = read_images(run, args.data)
    for i in args.index:
        if not 0 <= i < len(images.x):
            raise VaekitError(f"index {i} is out of range: {args.data} has {len(images.x)} images")
    z = run.encode(images.x[list(args.index)])
    t = np.linspace(0, 1, args.steps)[:, None]
    path = (1 - t) * z[0] + t * z[1]  # (steps, D): a straight line between the two codes
    grid = visual.image_grid(torch.from_numpy(run.decode(path)), nrow=args.steps)
    visual.save_image(grid, out, max(1, 600 // grid.shape[1]))
    print(f"wrote {out} ({args.steps} steps from image {args.index[0]} to image {args.index[1]})")

"""`vaekit reconstruct RUN --data DATA`: inputs beside their reconstructions."""
from __future__ import annotations

from .common import load_run, output, print_sentences, read_images, write_rows
from .options import add_decode_options, add_run_verb, decode_config, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "reconstruct", "inputs beside their reconstructions (images: PNG; text: "
                          "lines)")
    parser.add_argument("-n", type=whole(1), default=16, help="how many inputs (the first N)")
    add_decode_options(parser)
    return parser


def run(args) -> None:
    loaded = load_run(args)
    if loaded.kind == "text":
        _reconstruct_text(loaded, args)
        return
    if loaded.kind == "tabular":
        _reconstruct_tabular(loaded, args)
        return
    _reconstruct_images(loaded, args)


def _reconstruct_text(run, args) -> None:
    from ..text import read_texts

    sentences = read_texts(args.data, run.data_config, default_split="test")[:args.n]
    outputs = run.reconstruct(sentences, decode_config(args))
    print_sentences([f"{a}\t{b}" for a, b in zip(sentences, outputs)], args, header="input\treconstruction")


def _reconstruct_tabular(run, args) -> None:
    write_rows(run, run.reconstruct(run.read(args.data)[0][:args.n]), args, "reconstruct.csv")


def _reconstruct_images(run, args) -> None:
    import torch

    from .. import visual

    out = output(args.out, run.path / "plots" / "reconstruct.png", args.overwrite)
    images = read_images(run, args.data, args.n)
    x = run.prepare(images.x).cpu()
    r = torch.from_numpy(run.reconstruct(images.x))
    grid = visual.image_grid(torch.stack([x, r], 1).flatten(0, 1), nrow=2 * min(8, len(x)))
    visual.save_image(grid, out, max(1, 400 // grid.shape[1]))
    print(f"wrote {out} (each input beside its reconstruction, {len(x)} images)")

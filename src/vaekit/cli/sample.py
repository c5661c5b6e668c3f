"""`vaekit sample RUN`: decode draws from the prior (images: PNG grid + .npy; text: sentences; tables: CSV)."""
from __future__ import annotations

from ..errors import MAX_OUTPUTS
from .common import output, print_sentences, write_rows
from .options import add_decode_options, add_run_verb, decode_config, finite, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "sample", "decode draws from the prior (images: PNG grid + .npy; text: "
                          "sentences)", data=False)
    parser.add_argument("-n", type=whole(1, MAX_OUTPUTS), default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=finite(0), default=1.0, help="scale of the prior draws")
    add_decode_options(parser)
    return parser


def run(args) -> None:
    from .. import api

    loaded = api.load(args.run)
    if loaded.kind == "text":
        _sample_text(loaded, args)
        return
    if loaded.kind == "tabular":
        _sample_tabular(loaded, args)
        return
    _sample_images(loaded, args)


def _sample_text(run, args) -> None:
    print_sentences(run.sample(args.n, seed=args.seed, temperature=args.temperature, config=decode_config(args)),
                    args)


def _sample_tabular(run, args) -> None:
    write_rows(run, run.sample(args.n, seed=args.seed, temperature=args.temperature), args, "samples.csv")


def _sample_images(run, args) -> None:
    import numpy as np
    import torch

    from .. import visual

    out = output(args.out, run.path / "plots" / "samples.png", args.overwrite, lambda o: [o.with_suffix(".npy")])
    x = run.sample(args.n, seed=args.seed, temperature=args.temperature)
    grid = visual.image_grid(torch.from_numpy(x))
    visual.save_image(grid, out, max(1, 400 // grid.shape[0]))
    np.save(out.with_suffix(".npy"), x)
    print(f"wrote {out} and {out.with_suffix('.npy')} ({args.n} samples, shape {x.shape[1:]})")

"""`vaekit manifold RUN`: the decoded grid of a 2-D latent space (image runs)."""
from __future__ import annotations

from ..errors import VaekitError
from ..outputs import output_path
from .common import load_run
from .options import add_compute_options, add_run_verb, finite, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "manifold", "decoded grid of a 2-D latent space", data=False)
    parser.add_argument("-n", type=whole(1, 100), default=20, help="images per side of the grid")
    parser.add_argument("--span", type=finite(0), default=2.0, help="the grid covers [-span, span] in each dimension")
    add_compute_options(parser, batch_size=False)
    return parser


def run(args) -> None:
    from .. import visual

    loaded = load_run(args)
    if not loaded.modality.draws_images:
        raise VaekitError(f"the manifold plot draws images; for {loaded.kind} runs use sample or embed")
    if loaded.model.latent_dim != 2:
        raise VaekitError(f"the manifold plot needs a 2-D latent space; this run has {loaded.model.latent_dim}")
    out = output_path(args.out, loaded.path / "plots" / "manifold.png", args.overwrite)
    visual.manifold(loaded.model, out, n=args.n, span=args.span)
    print(f"wrote {out} ({args.n}x{args.n} decoded grid over [-{args.span}, {args.span}]^2)")

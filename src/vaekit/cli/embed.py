"""`vaekit embed RUN --data DATA`: latent means to .npy or .csv, and a 2-D view coloured by label."""
from __future__ import annotations

from ..outputs import output_path
from .common import load_run
from .options import add_compute_options, add_run_verb, whole


def register(subparsers):
    parser = add_run_verb(subparsers, "embed", "latent means to .npy or .csv, and a 2-D view coloured by label")
    parser.add_argument("--limit", type=whole(1))
    parser.add_argument("--view", default="pca", choices=("pca", "umap", "parametric"),
                        help="2-D view of a latent space of more than 2 dimensions: umap needs umap-learn; "
                             "parametric fits a map once (saved in RUN/embedding_map) and reuses it for new data")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="bf16: about 4x faster encoding on CPUs with native bf16, means within about 1%%")
    add_compute_options(parser)
    return parser


def run(args) -> None:
    from ..embedding import companion_paths, embed

    loaded = load_run(args, precision=args.precision)
    out = output_path(args.out, loaded.path / "embedding.npy", args.overwrite,
                 lambda o: companion_paths(o, args.view, loaded.model.latent_dim))
    for line in embed(loaded, args.data, out, args.view, args.limit):
        print(line)

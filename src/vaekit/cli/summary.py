"""`vaekit summary [RUN]`: print a model's layers, output shapes and parameters."""
from __future__ import annotations

from ..errors import VaekitError
from .options import whole


def register(subparsers):
    parser = subparsers.add_parser("summary", help="print a model's layers, output shapes and parameters")
    parser.add_argument("run", nargs="?", help="a run directory (else the model given by the options below)")
    parser.add_argument("--model", help="a registered model (default: conv), with its own defaults")
    parser.add_argument("--image-shape", type=whole(1), nargs=3, metavar=("C", "H", "W"), help="image models")
    parser.add_argument("--latent-dim", type=whole(1))
    return parser


def run(args) -> None:
    from ..models import build_model
    from ..summary import model_summary

    if args.run:
        from .. import api

        if args.model or args.image_shape or args.latent_dim:
            raise VaekitError("give a run or model options (--model, --image-shape, --latent-dim), not both")
        print(model_summary(api.load(args.run).model))
        return
    options = {"image_shape": tuple(args.image_shape) if args.image_shape else None, "latent_dim": args.latent_dim}
    print(model_summary(build_model(args.model or "conv", **{k: v for k, v in options.items() if v is not None})))

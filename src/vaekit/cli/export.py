"""`vaekit export RUN --onnx`: the encoder and decoder as ONNX graphs, checked in onnxruntime where it is."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import VaekitError
from .options import add_run_verb


def register(subparsers):
    parser = add_run_verb(subparsers, "export", "the encoder and decoder as ONNX graphs (RUN/onnx)", data=False,
                          out_help="folder for the graphs (default: RUN/onnx)")
    parser.add_argument("--onnx", action="store_true", help="ONNX graphs with a dynamic batch axis + manifest.json")
    return parser


def run(args) -> None:
    from .. import api, export

    if not args.onnx:
        raise VaekitError("choose a format: vaekit export RUN --onnx")
    manifest = export.export_onnx(args.run, args.out, args.overwrite)
    out = Path(args.out) if args.out else Path(args.run) / "onnx"
    for graph in manifest["graphs"].values():
        ins = ", ".join(i["name"] for i in graph["inputs"])
        outs = ", ".join(o["name"] for o in graph["outputs"])
        print(f"wrote {out / graph['file']}: ({ins}) -> ({outs})")
    try:
        diffs = export.max_difference(api.load(args.run).model, out)
        print(f"checked in onnxruntime: max |onnxruntime - torch| = {max(diffs.values()):.2g}")
    except VaekitError as e:  # no onnxruntime here: the export itself is fine
        print(f"vaekit: note: not checked ({e})", file=sys.stderr)
    print(f"wrote {out / 'manifest.json'}")

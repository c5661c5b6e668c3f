"""`vaekit decompress FILE --run RUN --out Y`: restore what `vaekit compress` compressed, exactly."""
from __future__ import annotations

from .compress import decompress_command


def register(subparsers):
    parser = subparsers.add_parser("decompress", help="restore what `vaekit compress` compressed, exactly")
    parser.add_argument("file", help="a file written by `vaekit compress`")
    parser.add_argument("--run", required=True, help="the run it was compressed with")
    parser.add_argument("--out", required=True, help="where to write: a file (text, .npy) or a folder (images)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out (or files of the same name in it)")
    return parser


def run(args) -> int:
    return decompress_command(args)

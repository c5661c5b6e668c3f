"""The `vaekit` command line: one module per verb, each with `register(subparsers)` (adds its subparser and
options, returns the subparser) and `run(args)` (does the work; None, or an exit code). This entry point only
collects them; the option machinery they share is in options.py (options made from the config dataclasses)
and common.py (output paths, loading runs and their data, distributed launches)."""
from __future__ import annotations

import argparse
import sys

from ..errors import VaekitError
from . import (
    anomalies,
    compare,
    compress,
    decompress,
    embed,
    evaluate,
    explore,
    export,
    impute,
    info,
    interpolate,
    manifold,
    raters,
    reconstruct,
    refine,
    resume,
    sample,
    summary,
    train,
    vary,
)
from .common import run_is_main

# In the order `vaekit --help` lists them.
VERBS = (train, resume, refine, info, summary, sample, reconstruct, impute, vary, embed, anomalies, interpolate, export,
         compress, decompress, manifold, evaluate, compare, explore, raters)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaekit", epilog="`vaekit COMMAND -h` lists a command's options; `vaekit train image` trains on "
        "scikit-learn's bundled digits with no download.",
        description="Variational autoencoders for images, text and tables: train one into a run directory, "
                    "then sample, reconstruct, vary sentences, embed, score anomalies, evaluate and export it.")
    from ..version import __version__

    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        verb.register(subparsers).set_defaults(func=verb.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    _report_through_vaekit()
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # for the verbs that relaunch themselves (--nproc) or ask what was typed
    return _run(args)


def _report_through_vaekit() -> None:
    """Log records (downloads and other long waits report through the "vaekit" logger) and warnings
    as one "vaekit: ..." line each."""
    import logging
    import warnings

    from ..messages import to_stdout

    logging.basicConfig(level=logging.WARNING, format="vaekit: %(message)s")
    logging.getLogger("vaekit").setLevel(logging.INFO)
    to_stdout()  # the epoch lines: the run's log, on stdout as they are
    warnings.formatwarning = lambda message, *args, **kwargs: f"vaekit: warning: {message}\n"


def _run(args) -> int:
    """The verb's exit code: 0, or the code of the processes it launched; 2 for a user's error (one line,
    no traceback), 130 when interrupted, 1 when the reader of stdout went away."""
    from ..training import TrainingInterrupted

    try:
        code = args.func(args)  # None, or the exit code of processes it launched
        sys.stdout.flush()  # a reader that went away shows up here, inside the try, not at exit
    except BrokenPipeError:
        # `vaekit ... | head`: stop quietly, and point stdout at devnull so Python's own flush at exit
        # does not fail again (the recipe of the Python docs, signal module, "Note on SIGPIPE").
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except VaekitError as e:
        from .. import distributed

        if not distributed.report_child_error(str(e)):  # a --nproc child: the launcher prints it once
            print(f"vaekit: error: {distributed.error_prefix()}{e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        if run_is_main():  # one message from a distributed job
            print(f"vaekit: interrupted: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if run_is_main():
            print("vaekit: interrupted", file=sys.stderr)
        return 130
    return code or 0

"""`vaekit explore RUN`: serve a local web page to explore a run's latent space (vaekit.explore).

A verb module as the cli/ package will hold them: register(subparsers) adds the subparser and its
options, run(args) does the work and returns the exit code.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import VaekitError

DEFAULT_LIMIT = 60_000  # examples on the map: all of MNIST's training set


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number in 0..65535 (0: a free one), got {text!r}")
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "explore", help="a local web page to explore a run's latent space: the map, decoding, interpolation",
        description="Serve a page on 127.0.0.1 that draws the data's latent means in 2-D (coloured by label, "
                    "anomaly score or ELBO) and decodes any point of it. Ctrl-C stops the server.")
    p.add_argument("run", help="a run directory (vaekit train ... --out RUN)")
    p.add_argument("--data", help="what to put on the map, as the run reads data (default: what the run was trained "
                                  "on; for named image sets their test split): digits, mnist:train, a folder, "
                                  "sentences, a table")
    p.add_argument("--data-dir", help="where named data sets (mnist, ptb, ...) are, when the run has moved")
    p.add_argument("--column", help="text runs: the CSV column holding the sentences")
    p.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT,
                   help=f"at most this many examples on the map (default {DEFAULT_LIMIT})")
    p.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    return p


def _read_data(run, source: str | None, limit: int):
    """The examples for the map; a run whose own data cannot be read says which --data to pass."""
    from ..anomaly import read_inputs

    given = source is not None
    source = source if given else run.data_config.data
    try:
        return read_inputs(run, source, limit)
    except VaekitError as e:
        if given:
            raise
        raise VaekitError(f"cannot read {source!r}, the data {run.path} was trained on ({e}); pass the "
                          f"{run.modality.noun} to "
                          f"show with --data PATH, or --data-dir where named data sets are") from None


def run(args) -> int:
    from .. import api
    from ..explore import Explorer, make_server

    loaded = api.load(args.run).read_from(args.data_dir, args.column)
    server = make_server(None, args.port)  # first: a port in use is said before the data is encoded
    try:
        server.explorer = Explorer(loaded, _read_data(loaded, args.data, args.limit))
    except BaseException:
        server.server_close()
        raise
    print(f"exploring {loaded.path} at {server.url}  (Ctrl-C stops)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0

"""Where vaekit's messages go: Python's logging, under the "vaekit" logger, so an application routes,
filters or silences them like any other library's (`logging.getLogger("vaekit").setLevel(logging.WARNING)`).

The per-epoch lines are records of "vaekit.train" at INFO. Until the application configures logging
(the root logger has no handler), they are printed to stdout above the progress bar, as a script expects;
once it does, they reach its handlers instead. `vaekit.VAE(verbose=False)` silences them while it trains.
"""
from __future__ import annotations

import contextlib
import logging

TRAIN = "vaekit.train"


class _Console(logging.Handler):
    """Prints a record (through tqdm, so a progress bar is not torn) when no handler of the application
    would: the root logger has none. Once logging is configured, propagation delivers the record instead."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        from tqdm.auto import tqdm

        tqdm.write(self.format(record))


def _train_logger() -> logging.Logger:
    """The "vaekit.train" logger, given its console handler and vaekit's INFO level the first time (lazily:
    nothing at import time; a level the application set on "vaekit" stays)."""
    logger = logging.getLogger(TRAIN)
    if not any(isinstance(h, _Console) for h in logger.handlers):
        logger.addHandler(_Console())
        package = logging.getLogger("vaekit")
        if package.level == logging.NOTSET:
            package.setLevel(logging.INFO)
    return logger


def epoch(line: str) -> None:
    """One epoch's figures (the run's log)."""
    _train_logger().info(line)


@contextlib.contextmanager
def quiet():
    """Silence the training messages within (warnings still pass): scikit-learn's verbose=False."""
    logger = _train_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def to_stdout() -> None:
    """The command line: the epoch lines on stdout as they are, not as "vaekit: ..." warnings on stderr."""
    import sys

    logger = _train_logger()

    class Stdout(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=sys.stdout)

    if not any(type(h).__name__ == "Stdout" for h in logger.handlers):
        logger.addHandler(Stdout())
    logger.propagate = False

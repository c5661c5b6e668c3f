"""What several verbs do alike: choose where a result goes (never over a user's file without --overwrite),
load the run and read its data, print or write sentences and rows, and launch a distributed job."""
from __future__ import annotations

import json
import os
from pathlib import Path


# ---- where results go -----------------------------------------------------------------------------
def destination(args):
    """The verb's --out and --overwrite as a vaekit.outputs.Destination (the modality writes through it)."""
    from ..outputs import Destination

    return Destination(getattr(args, "out", None), getattr(args, "overwrite", False))


def output_options(run, args) -> dict:
    """What a text run decodes with (--strategy, --beam-size, ...); other kinds decode to means."""
    from .options import decode_config

    return {"config": decode_config(args)} if run.modality.makes_text else {}


def unused(stem: Path) -> Path:
    """stem, or stem-2, stem-3, ...: the first that does not exist."""
    out, i = stem, 1
    while out.exists():
        i += 1
        out = stem.with_name(f"{stem.name}-{i}")
    return out


# ---- runs and their data --------------------------------------------------------------------------
def load_run(args, **options):
    """The run at args.run, on --device under --precision, with --threads and --batch-size (options.
    add_compute_options). --data-dir (the commands that read data) replaces where it looks up named data
    sets: by default the folder it was trained from, saved in its config.json, else $VAEKIT_DATA;
    --column, the CSV column of a text run's sentences (by default the one it was trained from)."""
    import torch

    from .. import api

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    for name in ("device", "precision"):
        if getattr(args, name, None) and name not in options:
            options[name] = getattr(args, name)
    run = api.load(args.run, **options).read_from(getattr(args, "data_dir", None), getattr(args, "column", None))
    if getattr(args, "batch_size", None):
        run.batch_size = args.batch_size
    return run


def kept_epoch(run) -> str:
    """", weights of epoch N (best validation -ELBO X)" for a run that kept its best epoch, else ""."""
    from .. import runs

    lines = (Path(run) / runs.METRICS).read_text().splitlines()
    history = [json.loads(line) for line in lines]
    if not history or "best_epoch" not in history[-1]:
        return ""
    best = history[history[-1]["best_epoch"] - 1]
    return f", weights of epoch {best['epoch']} of {len(history)} (best validation -ELBO {best['val_loss']:.2f})"


# ---- sentences ---------------------------------------------------------------------------
def print_sentences(lines: list[str], args, header: str | None = None) -> None:
    """Print sentences; with --out also write them, one per line (never over a user's file)."""
    destination(args).lines(lines, header)


# ---- distributed jobs -----------------------------------------------------------------------------
def run_is_main() -> bool:
    """False in the processes of a distributed job other than rank 0 (they stay quiet)."""
    return os.environ.get("RANK", "0") == "0"


def launch(args, extra: list[str]) -> int | None:
    """With --nproc N (N > 1): rerun this command in N processes (vaekit.distributed) and return
    their exit code; None when this process should do the work itself."""
    if getattr(args, "nproc", 1) <= 1 or "WORLD_SIZE" in os.environ:
        return None
    from .. import distributed

    argv = _without_nproc(args.argv) + extra  # a repeated --out: argparse keeps the last, the same one
    return distributed.launch_local(args.nproc, argv, getattr(args, "device", "auto") or "auto")


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out

"""What several verbs do alike: choose where a result goes (never over a user's file without --overwrite),
load the run and read its data, print or write sentences and rows, and launch a distributed job."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import VaekitError


# ---- where results go -----------------------------------------------------------------------------
def output(path: str | None, default: Path, overwrite: bool, companions=lambda out: []) -> Path:
    """Where to write a result: never over an existing file the user named, unless told to; nor over
    the files written beside it (`companions(out)`: e.g. embed's OUT_latent.png, sample's OUT.npy)."""
    out = Path(path) if path else default
    if path and out.is_dir():
        raise VaekitError(f"{out} is a folder; --out takes a file name here")
    if path and not overwrite:
        for target in [out, *companions(out)]:
            if target.exists():
                raise VaekitError(f"{target} exists; pass --overwrite to replace it"
                                  + (f" (it would be written beside {out})" if target != out else ""))
    if not out.parent.is_dir():
        raise VaekitError(f"folder {out.parent} does not exist")
    return out


def unused(stem: Path) -> Path:
    """stem, or stem-2, stem-3, ...: the first that does not exist."""
    out, i = stem, 1
    while out.exists():
        i += 1
        out = stem.with_name(f"{stem.name}-{i}")
    return out


# ---- runs and their data --------------------------------------------------------------------------
def load_run(args, **options):
    """The run at args.run. --data-dir (the commands that read data) replaces where it looks up named data
    sets: by default the folder it was trained from, saved in its config.json, else $VAEKIT_DATA;
    --column, the CSV column of a text run's sentences (by default the one it was trained from)."""
    from .. import api

    return api.load(args.run, **options).read_from(getattr(args, "data_dir", None), getattr(args, "column", None))


def read_images(run, source: str, limit: int | None = None):
    """An image run's images from `source` (its test split for named sets), the first `limit` of them."""
    from ..image import read_images

    images = read_images(source, run.data_config, default_split="test")
    if limit is not None:
        images.x, images.y = images.x[:limit], None if images.y is None else images.y[:limit]
    return images


def kept_epoch(run) -> str:
    """", weights of epoch N (best validation -ELBO X)" for a run that kept its best epoch, else ""."""
    from .. import runs

    lines = (Path(run) / runs.METRICS).read_text().splitlines()
    history = [json.loads(line) for line in lines]
    if not history or "best_epoch" not in history[-1]:
        return ""
    best = history[history[-1]["best_epoch"] - 1]
    return f", weights of epoch {best['epoch']} of {len(history)} (best validation -ELBO {best['val_loss']:.2f})"


# ---- sentences and rows ---------------------------------------------------------------------------
def print_sentences(lines: list[str], args, header: str | None = None) -> None:
    """Print sentences; with --out also write them, one per line (never over a user's file)."""
    out = output(args.out, Path(args.out), args.overwrite) if args.out else None  # refused before printing
    for line in lines:
        print(line)
    if out:
        from ..runs import atomic_write

        atomic_write(out, ("\n".join(([header] if header else []) + lines) + "\n").encode())
        print(f"wrote {out}")


def write_rows(run, rows, args, name: str) -> None:
    """Tabular rows (raw units) as CSV with the run's column names, inside the run unless --out."""
    import csv
    import io

    from ..runs import atomic_write

    out = output(args.out, run.path / name, args.overwrite)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(run.scaler.columns)
    writer.writerows([[f"{v:.6g}" for v in row] for row in rows])
    atomic_write(out, buffer.getvalue().encode())
    print(f"wrote {out} ({len(rows)} rows of {rows.shape[1]} features, in the data's own units)")


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

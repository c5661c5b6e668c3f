"""The run directory: one format for every model kind, written so a crash never corrupts it.

    RUN/config.json            what to rebuild: model name + config, train and data settings
    RUN/model.safetensors      the weights (latest completed epoch)
    RUN/checkpoint.safetensors weights + optimizer + RNG states + trainer state (metadata), for resume
    RUN/status.json            running | interrupted | failed | complete, with epoch and step
    RUN/metrics.jsonl          one JSON object per epoch
    RUN/summary.txt            the model summary
    RUN/tb/                    TensorBoard events
    RUN/plots/                 training curve and image grids

and, once the run is used, the reports vaekit writes beside them (OUTPUTS below): evaluation.json,
anomalies/, embedding.npy, onnx/, ...

Every file is written to a temporary name, fsynced and renamed over the old one, so a reader
(or a resume after SIGKILL) only ever sees a complete old or a complete new file. Nothing is
pickled: weights are safetensors, everything else is JSON.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import VaekitError
from .schema import check_keys

FORMAT = "vaekit-run"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, CHECKPOINT, STATUS, METRICS = (
    "config.json", "model.safetensors", "checkpoint.safetensors", "status.json", "metrics.jsonl")
MAX_JSON_BYTES = 16 * 2**20  # no config or vocabulary of ours is near this; refuse hostile files
# config.json's top-level keys and their JSON types (refined_from: vaekit refine; estimator:
# vaekit.VAE.save). The sections' contents are checked against their dataclasses where they are read.
CONFIG_KEYS = {"format": str, "format_version": int, "vaekit_version": str, "kind": str, "model": dict,
               "data": dict, "train": dict, "refined_from": str, "estimator": dict}
# What vaekit writes into a run directory once the run is used (reports and files derived from the
# model), by name: file names at the top, and for each folder the names of the files it writes there.
OUTPUTS = re.compile(r"reference\.safetensors|calibration\.json|heldout_scores\.json"
                     r"|samples(-\d+)?\.csv|reconstruct(-\d+)?\.csv"
                     r"|evaluation(-\d+)?\.(json|md)"
                     r"|embedding(-\d+)?(_(labels|latent|pca|umap|parametric))?\.npy"
                     r"|embedding(-\d+)?_(latent|pca|umap|parametric)\.png")
OUTPUT_FOLDERS = {
    re.compile(r"anomalies(-\d+)?"):
        re.compile(r"scores\.csv|histogram\.png|summary\.json|most_anomalous\.(png|txt)"),
    re.compile(r"onnx"): re.compile(r"\w+\.onnx|manifest\.json|tokenizer\.json|standardize\.json"),
    re.compile(r"embedding_map"): re.compile(r"config\.json|model\.safetensors|weights\.json"),
}


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write bytes to path via a fsynced temporary file and an atomic rename.

    A failed write (disk full, read-only folder) leaves the previous file untouched, removes the
    temporary file and raises VaekitError saying why.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise write_error(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide runs from the user's group
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise
    _fsync_dir(path.parent)


_WHY = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
        errno.EPERM: "permission denied"}


def write_error(path: Path, e: OSError) -> VaekitError:
    """One clear message for a failed write; the earlier file, if any, is still intact."""
    kept = "; the previous version is kept" if path.exists() else ""
    return VaekitError(f"cannot write {path}: {_WHY.get(e.errno, e.strerror or str(e))}{kept}")


def check_writable(folder: str | Path, needed_bytes: int = 0) -> None:
    """Fail early, with a clear message, when folder cannot take `needed_bytes` more.

    A probe file catches read-only folders and file systems (also for root, who ignores
    permission bits but not EROFS); the free-space check catches a disk too full for the next
    checkpoint before hours of training are spent.
    """
    folder = Path(folder)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".vaekit-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise VaekitError(f"cannot write to {folder}: {_WHY.get(e.errno, e.strerror or str(e))}") from None
    free = shutil.disk_usage(folder).free
    if needed_bytes and free < needed_bytes:
        raise VaekitError(f"only {free / 2**20:.1f} MiB free in {folder}, but the checkpoints of this run need "
                          f"about {needed_bytes / 2**20:.1f} MiB; free some space or choose another --out")


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def remove_temporaries(folder: str | Path) -> list[str]:
    """Delete the temporary files of writes that a crash (SIGKILL, power loss) cut short."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file() and _is_temporary(tmp.name):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def _fsync_dir(folder: Path) -> None:
    try:  # makes the rename itself durable; not possible on every platform
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise VaekitError(f"{path} is larger than {MAX_JSON_BYTES} bytes; not a vaekit file")
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VaekitError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VaekitError(f"{path} is not valid JSON ({e})") from None
    except RecursionError:
        raise VaekitError(f"{path} is nested too deeply; not a vaekit file") from None


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, save(tensors, metadata=metadata))


@contextlib.contextmanager
def _reading_tensors(path: str | Path):
    """A safetensors file that is missing or unreadable becomes one clear VaekitError."""
    try:
        yield
    except FileNotFoundError:
        raise VaekitError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise VaekitError(f"{path} is not a readable safetensors file ({e})") from None


def tensors_metadata(path: str | Path) -> dict:
    """The string metadata stored in a safetensors file's header ({} when it has none)."""
    from safetensors import safe_open

    with _reading_tensors(path), safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): ties a derived file to the weights it was made from."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_tensors(path: str | Path) -> dict:
    with _reading_tensors(path):
        return load_file(str(path))


def is_run(path: str | Path) -> bool:
    """True when path holds a vaekit run (so --overwrite may replace it)."""
    try:
        return read_json(Path(path) / CONFIG).get("format") == FORMAT
    except (VaekitError, AttributeError, OSError):
        return False


def read_config(run: str | Path) -> dict:
    """config.json of a run, with its format checked."""
    run = Path(run)
    if not run.is_dir():
        raise VaekitError(f"no such run directory: {run}")
    if not (run / CONFIG).exists():  # often the folder the runs are in: name them
        entries = itertools.islice(run.iterdir(), 10_000)  # a data folder given by mistake may hold millions
        inside = sorted(p.name for p in entries if (p / CONFIG).is_file())
        raise VaekitError(f"{run} is not a run directory (it has no {CONFIG})"
                          + (f"; the runs in it: {', '.join(str(run / n) for n in inside[:5])}"
                             + (f" and {len(inside) - 5} more" if len(inside) > 5 else "") if inside else ""))
    config = read_json(run / CONFIG)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise VaekitError(f"{run} is not a vaekit run (config.json has no '{FORMAT}' format tag)")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise VaekitError(
            f"{run} uses run format version {version!r}; this vaekit reads version {FORMAT_VERSION}"
            + (" (upgrade vaekit to read it)" if newer else ""))
    check_keys(config, CONFIG_KEYS, "config.json")
    return config


def is_complete(run: str | Path) -> bool:
    """True when status.json says the run's training is complete."""
    try:
        status = read_json(Path(run) / STATUS)
    except VaekitError:
        return False
    return isinstance(status, dict) and status.get("state") == "complete"


def read_weights(run: str | Path) -> dict:
    """model.safetensors of a run. A run without one says why (its training failed, or has not
    finished an epoch), as status.json records it, rather than only that the file is missing."""
    run = Path(run)
    if (run / WEIGHTS).exists():
        return load_tensors(run / WEIGHTS)
    try:
        status = read_json(run / STATUS)
    except VaekitError:
        status = {}
    state = status.get("state") if isinstance(status, dict) else None
    if state == "failed":
        reason = status.get("message")
        raise VaekitError(f"{run} has no weights to use: its training failed before saving any"
                          + (f". {STATUS} says: {reason}" if isinstance(reason, str) and reason else ""))
    if state in ("running", "interrupted"):
        raise VaekitError(f"{run} has no weights yet: its first epoch has not ended (it is still training, "
                          f"or was stopped; continue a stopped run with: vaekit resume {run})")
    raise VaekitError(f"{run / WEIGHTS} is missing")


def create_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Make an empty run directory, refusing to touch anything that is not ours to replace."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VaekitError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        started = _run_started(path)
        if not is_run(path) and not started:
            raise VaekitError(f"{path} is not empty and is not a vaekit run; choose another --out")
        if not overwrite:
            raise VaekitError(f"{path} holds the first files of a run stopped before its config.json was written; "
                              "pass --overwrite to replace them (in Python: overwrite=True)" if started else
                              f"{path} already holds a run; pass --resume to continue it "
                              "or --overwrite to replace it (in Python: overwrite=True)")
        _remove_run(path)
        remove_temporaries(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VaekitError(f"cannot write to {path}: {e.strerror or e}") from None
    check_writable(path)
    return path


FIRST_FILES = ("summary.txt", "tokenizer.json", "standardize.json")  # written before config.json


def _run_started(path: Path) -> bool:
    """True for a folder holding only what a new run writes before config.json (a run killed while
    it was being created): without this it could be neither resumed nor replaced."""
    names = [entry.name for entry in path.iterdir()]
    return CONFIG not in names and any(n in FIRST_FILES for n in names) and all(
        n in FIRST_FILES or _is_temporary(n) for n in names)


def _remove_run(path: Path) -> None:
    """Delete a previous run's own files and the reports vaekit wrote about its model (OUTPUTS).

    The reports go with the model they describe: kept, they would be read as the new model's
    (`vaekit compare RUN` takes the newest evaluation; embed reuses embedding_map/, the estimator
    calibration.json) and numbered after it (anomalies-3/). Only the names vaekit writes are
    removed, inside its folders too; any other file is the user's and stays, with its folder.
    """
    for name in (CONFIG, WEIGHTS, CHECKPOINT, STATUS, METRICS, "summary.txt", "tokenizer.json", "standardize.json"):
        (path / name).unlink(missing_ok=True)
    for folder in ("tb", "plots"):
        shutil.rmtree(path / folder, ignore_errors=True)
    removed = []
    for entry in sorted(path.iterdir()):
        if entry.is_symlink():  # what a link points to is not the run's
            continue
        if entry.is_file() and OUTPUTS.fullmatch(entry.name):
            entry.unlink()
            removed.append(entry.name)
        elif entry.is_dir() and (names := _output_files(entry.name)):
            for file in entry.iterdir():
                if file.is_file() and not file.is_symlink() and (names.fullmatch(file.name)
                                                                 or _is_temporary(file.name)):
                    file.unlink()
            with contextlib.suppress(OSError):  # not empty: the user's files stay, and their folder
                entry.rmdir()
            removed.append(entry.name + "/")
    if removed:
        logging.getLogger(__name__).info("removed the replaced model's reports from %s: %s", path, ", ".join(removed))


def _output_files(folder: str) -> re.Pattern | None:
    """The names vaekit writes in a run's sub-folder of this name; None for a folder not vaekit's."""
    return next((files for name, files in OUTPUT_FOLDERS.items() if name.fullmatch(folder)), None)


def _is_temporary(name: str) -> bool:
    """.NAME.XXXXXXXX.tmp, as atomic_write names its temporary files."""
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3

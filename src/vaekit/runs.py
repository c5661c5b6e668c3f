"""The run directory: one format for every model kind, written so a crash never corrupts it.

    RUN/config.json            what to rebuild: model name + config, train and data settings
    RUN/model.safetensors      the weights (latest completed epoch)
    RUN/checkpoint.safetensors weights + optimizer + RNG states + trainer state (metadata), for resume
    RUN/status.json            running | interrupted | failed | complete, with epoch and step
    RUN/metrics.jsonl          one JSON object per epoch
    RUN/summary.txt            the model summary
    RUN/tb/                    TensorBoard events
    RUN/plots/                 training curve and image grids

Every file is written to a temporary name, fsynced and renamed over the old one, so a reader
(or a resume after SIGKILL) only ever sees a complete old or a complete new file. Nothing is
pickled: weights are safetensors, everything else is JSON.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import VaekitError

FORMAT = "vaekit-run"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, CHECKPOINT, STATUS, METRICS = (
    "config.json", "model.safetensors", "checkpoint.safetensors", "status.json", "metrics.jsonl")
MAX_JSON_BYTES = 16 * 2**20  # no config or vocabulary of ours is near this; refuse hostile files


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
        if tmp.is_file() and tmp.name.count(".") >= 3:  # .NAME.XXXXXXXX.tmp, as atomic_write names them
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
    config = read_json(run / CONFIG)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise VaekitError(f"{run} is not a vaekit run (config.json has no '{FORMAT}' format tag)")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise VaekitError(
            f"{run} uses run format version {version!r}; this vaekit reads version {FORMAT_VERSION}"
            + (" (upgrade vaekit to read it)" if newer else ""))
    return config


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Make an empty run directory, refusing to touch anything that is not ours to replace."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VaekitError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not is_run(path):
            raise VaekitError(f"{path} is not empty and is not a vaekit run; choose another --out")
        if not overwrite:
            raise VaekitError(f"{path} already holds a run; pass --resume to continue it "
                              "or --overwrite to replace it")
        _remove_run(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VaekitError(f"cannot write to {path}: {e.strerror or e}") from None
    check_writable(path)
    return path


def _remove_run(path: Path) -> None:
    """Delete a previous run's own files only (never unknown files a user put there)."""
    for name in (CONFIG, WEIGHTS, CHECKPOINT, STATUS, METRICS, "summary.txt"):
        (path / name).unlink(missing_ok=True)
    for folder in ("tb", "plots"):
        shutil.rmtree(path / folder, ignore_errors=True)

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

import json
import os
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
    """Write bytes to path via a fsynced temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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


def load_tensors(path: str | Path) -> dict:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise VaekitError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise VaekitError(f"{path} is not a readable safetensors file ({e})") from None


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
        probe = path / ".vaekit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise VaekitError(f"cannot write to {path}: {e.strerror or e}") from None
    return path


def _remove_run(path: Path) -> None:
    """Delete a previous run's own files only (never unknown files a user put there)."""
    import shutil

    for name in (CONFIG, WEIGHTS, CHECKPOINT, STATUS, METRICS, "summary.txt"):
        (path / name).unlink(missing_ok=True)
    for folder in ("tb", "plots"):
        shutil.rmtree(path / folder, ignore_errors=True)

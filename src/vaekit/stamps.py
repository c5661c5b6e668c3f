"""Which weights a derived output came from, and whether they are still the run's.

Everything vaekit derives from a run's weights (the ONNX graphs, the parametric embedding map, evaluations,
anomaly reports, the knn scores' reference codes, the cached held-out scores) records a stamp: the epoch the
weights are from and the SHA-256 of model.safetensors. A run trained further (`vaekit resume`) has new
weights, and an output whose stamp differs is stale: the verbs that reuse one make it again (reference
codes, held-out scores, the embedding map), the others are reported by `vaekit info RUN` and after a resume.
"""
from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path

from . import runs
from .errors import VaekitError

KEY = "weights"  # where a JSON output keeps its stamp
MAP_STAMP = "weights.json"  # the stamp of a folder whose own files have no room for one (embedding_map/)


@functools.lru_cache(maxsize=32)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return runs.file_digest(path)  # hashed once per version of the file, however often it is asked


def weights_digest(run: str | Path) -> str:
    """SHA-256 of the run's model.safetensors."""
    path = Path(run) / runs.WEIGHTS
    st = os.stat(path)
    return _digest(str(path.resolve()), st.st_mtime_ns, st.st_size)


def of_run(run: str | Path) -> dict:
    """The stamp of the run's current weights: {"epoch": N, "weights_sha256": hex}."""
    try:
        status = runs.read_json(Path(run) / runs.STATUS)
        epoch = status.get("epoch") if isinstance(status, dict) else None
    except VaekitError:
        epoch = None
    return {"epoch": epoch, "weights_sha256": weights_digest(run)}


def matches(stamp, run: str | Path) -> bool:
    """True when `stamp` names the run's current weights (the hash decides; the epoch is for people)."""
    return isinstance(stamp, dict) and stamp.get("weights_sha256") == weights_digest(run)


def read(path: Path) -> dict | None:
    """The stamp an output carries, None when it has none (written before stamps, or not vaekit's)."""
    try:
        if path.is_dir():
            for name in ("manifest.json", MAP_STAMP, "summary.json"):  # onnx/, embedding_map/, anomalies/
                if (path / name).is_file():
                    return read(path / name)
            return None
        if path.suffix == ".safetensors":  # reference.safetensors: its header's metadata
            meta = runs.tensors_metadata(path)
            return {"weights_sha256": meta["weights_sha256"]} if "weights_sha256" in meta else None
        if path.suffix == ".json":
            stamp = runs.read_json(path)
            stamp = stamp.get(KEY) if isinstance(stamp, dict) else None
            return stamp if isinstance(stamp, dict) else None
    except (VaekitError, OSError, json.JSONDecodeError):
        return None
    return None


def derived_outputs(run: str | Path) -> list[Path]:
    """The outputs vaekit derived from the run's weights that are in its directory (runs.OUTPUTS)."""
    run = Path(run)
    found = []
    for entry in sorted(run.iterdir()):
        if entry.is_symlink() or entry.name.endswith(".md"):  # evaluation.md: its .json carries the stamp
            continue
        if entry.is_file() and runs.OUTPUTS.fullmatch(entry.name) and entry.suffix in (".json", ".safetensors"):
            found.append(entry)
        elif entry.is_dir() and runs._output_files(entry.name):
            found.append(entry)
    return found


REMADE = ("reference.safetensors", "heldout_scores.json", "embedding_map")  # vaekit makes these again itself


def status(run: str | Path) -> list[tuple[Path, str]]:
    """(output, "current" | "stale: ..." | "unstamped ...") for each derived output of the run."""
    out = []
    for path in derived_outputs(run):
        stamp = read(path)
        if stamp is None:
            out.append((path, "unstamped (written before stamps, or not from these weights)"))
        elif matches(stamp, run):
            out.append((path, "current"))
        else:
            epoch = stamp.get("epoch")
            out.append((path, "stale: from other weights" + (f" (epoch {epoch})" if epoch is not None else "")
                        + ("; made again when next needed" if path.name in REMADE else "")))
    return out


def warn_stale(run: str | Path) -> list[Path]:
    """Warn about the outputs in the run that no longer match its weights (after it trained further)."""
    stale = [p for p, state in status(run) if not state.startswith("current")
             and p.name not in ("reference.safetensors", "heldout_scores.json", "calibration.json")]  # internal
    if stale:
        warnings.warn(f"{run}: these outputs were made from earlier weights and no longer match the run: "
                      f"{', '.join(p.name + ('/' if p.is_dir() else '') for p in stale)} (make them again: "
                      "export, evaluate, anomalies, embed; `vaekit info` lists them)", stacklevel=2)
    return stale

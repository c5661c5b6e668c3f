"""What every benchmark here shares: running a Keras peer in its own venv, and machine facts."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VAEKIT_SHARED", REPO.parent / "shared"))


def data_dir(option: str | None) -> Path:
    """--data-dir, else $VAEKIT_DATA, else ../shared/data."""
    return Path(option or os.environ.get("VAEKIT_DATA") or SHARED / "data")


def peer_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    setup = subprocess.run(["bash", str(SHARED / "peers" / "setup.sh")], capture_output=True, text=True)
    if setup.returncode != 0:
        raise RuntimeError(f"peer set-up failed: {setup.stderr.strip()[-500:]}")
    return str(Path(setup.stdout.strip().splitlines()[-1]) / "bin" / "python")


def run_peer(script: str, prefix: str, env: dict, python: str | None = None, timeout: int = 7200) -> dict:
    """Run ../shared/peers/<script> and parse its last line `<prefix>: key=value ...` into a dict.
    On failure the dict holds 'error'."""
    try:
        started = time.perf_counter()
        proc = subprocess.run([peer_python(python), str(SHARED / "peers" / script)], capture_output=True, text=True,
                              env={**os.environ, **{k: str(v) for k, v in env.items()}}, timeout=timeout)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        return {"error": str(e)}
    lines = [x for x in proc.stdout.splitlines() if x.startswith(prefix + ":")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-2000:]}
    figures = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.eE+]+)", lines[-1])}
    figures["wall_seconds"] = time.perf_counter() - started
    figures["stdout_tail"] = proc.stdout[-1500:]
    return figures


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}


def write_results(path: Path, report: dict) -> None:
    """A benchmark's figures as bench/results/NAME.json (numbers other tools read), announced on stdout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path}")

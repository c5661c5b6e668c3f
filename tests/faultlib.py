"""Fault injection shared by tests/test_faults.py, tests/test_fuzz.py and bench/faults.py.

- `kill_resume_loop`: a real `vaekit train` process killed with SIGKILL at random moments and
  resumed each time, checking the run directory after every kill.
- `check_run_files`: every file of a run directory parses (JSON, safetensors, PNG).
- `crafted_inputs`: a corpus of hostile files (generated, never committed) with the reader that
  must answer each one with a result or a VaekitError.
"""
from __future__ import annotations

import functools
import gzip
import io
import json
import os
import pickle
import random
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TIFF_MODES = ("CMYK", "I;16", "F", "I")  # modes PNG cannot hold
SRC = Path(__file__).resolve().parents[1] / "src"


# ---- run directories ------------------------------------------------------------------------------
def check_run_files(run: Path) -> list[str]:
    """Names of the files in `run` that do not parse (must be empty after any crash).

    TensorBoard event files are append-only logs (a torn last record is skipped by readers and
    dropped on resume by purge_step), so they are not checked; neither are leftover temporaries.
    """
    from PIL import Image

    from vaekit import runs
    from vaekit.errors import VaekitError

    corrupt = []
    for path in sorted(run.rglob("*")):
        if not path.is_file() or path.name.endswith(".tmp") or "tb" in path.relative_to(run).parts:
            continue
        try:
            if path.suffix == ".json":
                runs.read_json(path)
            elif path.suffix == ".jsonl":
                for line in path.read_text().splitlines():
                    json.loads(line)
            elif path.suffix == ".safetensors":
                runs.load_tensors(path)
            elif path.suffix == ".png":
                with Image.open(path) as img:
                    img.load()
        except (VaekitError, ValueError, OSError) as e:
            corrupt.append(f"{path.name}: {e}")
    return corrupt


def checkpoint_step(run: Path) -> int | None:
    """The optimizer step the run's checkpoint holds, or None without a checkpoint."""
    from safetensors import safe_open

    path = run / "checkpoint.safetensors"
    if not path.exists():
        return None
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["trainer"])["step"]


def same_weights(a: Path, b: Path) -> bool:
    """Bit-identical tensors in two safetensors files."""
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) and x[k].dtype == y[k].dtype for k in x)


# ---- the kill / resume loop -----------------------------------------------------------------------
def vaekit_env() -> dict:
    """The subprocess environment: this checkout's sources, one thread, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def train_command(out: Path, epochs: int = 2, checkpoint_every: int = 2) -> list[str]:
    """A short, deterministic training on the bundled digits: one thread (the same float results
    in every process), batches of 32 (45 steps per epoch), a checkpoint every few steps."""
    return [sys.executable, "-m", "vaekit.cli", "train", "image", "--data", "digits", "--model", "seed",
            "--out", str(out), "--epochs", str(epochs), "--batch-size", "32", "--threads", "1",
            "--checkpoint-every", str(checkpoint_every), "--seed", "7", "--no-progress"]


@dataclass
class KillReport:
    kills_tried: int = 0
    kills_survived: int = 0
    corrupt: list = field(default_factory=list)  # file problems found after any kill
    resume_seconds: list = field(default_factory=list)  # resume command start -> training again
    resumed_at: list = field(default_factory=list)  # (checkpoint step after the kill, step resumed at)
    identical: bool = False  # final model == the uninterrupted run's
    log: list = field(default_factory=list)


RESUME_LINES = (  # what `vaekit resume` prints once it has read the checkpoint (api.resume)
    (re.compile(r"^resuming .* at step (\d+) \(", re.M), int),
    (re.compile(r"has trained all \d+ epochs; finishing it from its checkpoint at step (\d+)$", re.M), int),
    (re.compile(r"stopped before its first checkpoint; training it from the start$", re.M), lambda _: None),
    (re.compile(r"is already complete \(.*$", re.M), lambda _: "complete"),
)


def resume_start(log: str) -> tuple | None:
    """(step,) once a resume's log says where it starts: the checkpoint's step, None when it trains
    from the start, "complete" when nothing was left to train; None while it has not said yet.
    Only complete lines are read.

    A kill that lands after the last checkpoint makes the next resume finish the run rather than
    resume it: the harness once waited for "resuming" alone, never saw it, and recorded no step
    (issue 30's `assert None == 90` under load, when the kill more often lands in that window).
    """
    complete = log[: log.rfind("\n") + 1]
    for pattern, value in RESUME_LINES:
        if match := pattern.search(complete):
            return (value(match.group(1) if match.groups() else None),)
    return None


def _wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.02)
    return False


def _reached(run: Path, step: int) -> bool:
    try:
        return (checkpoint_step(run) or 0) >= step
    except (OSError, ValueError, KeyError):
        return False


def kill_resume_loop(out: Path, kills: int, seed: int, reference: Path | None = None, max_delay: float = 1.0,
                     jitter: float = 0.25, timeout: float = 120.0, epochs: int = 2,
                     checkpoint_every: int = 2) -> KillReport:
    """Train into `out`, SIGKILL the process `kills` times at random moments (seeded), resuming
    after each; then let the last resume finish and compare with `reference` (an uninterrupted
    run of the same command), if given.

    The first kill comes 0..max_delay seconds after the run directory appears (start-up or the
    first steps). Each later one waits for a random step between where the resume started and
    its share of the steps left, then 0..jitter seconds more: a random point of the step and
    checkpoint-writing cycle, with training left for the next kills however fast the machine.
    """
    rng, report, env = random.Random(seed), KillReport(), vaekit_env()
    total_steps = epochs * -(-1438 // 32)  # the digits' 1438 training images in batches of 32
    logs = out.parent / f"{out.name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = train_command(out, epochs, checkpoint_every)
    for attempt in range(kills + 1):
        log = logs / f"{attempt}.out"
        started = time.monotonic()
        with open(log, "wb") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            # A resume says where it starts once the checkpoint is loaded (resume_start); a fresh run
            # has started once config.json (written last before training) exists.
            ready = (lambda log=log: resume_start(log.read_text()) is not None) \
                if attempt else (lambda: (out / "config.json").exists())
            if not _wait_for(ready, proc, timeout):
                report.log.append(f"attempt {attempt}: never started: {log.read_text()[-2000:]}")
                break
            if attempt:
                report.resume_seconds.append(time.monotonic() - started)
                before = report.resumed_at[-1][0]
                (at,) = resume_start(log.read_text())
                report.resumed_at[-1] = (before, before if at == "complete" else at)
            if attempt == kills:
                proc.wait(timeout=timeout)
                break
            if attempt:
                start = report.resumed_at[-1][1] or 0
                share = max(1, (total_steps - start) // (kills - attempt + 1))
                _wait_for(functools.partial(_reached, out, start + rng.randint(1, share)), proc, timeout)
                time.sleep(rng.uniform(0, jitter))
            else:
                time.sleep(rng.uniform(0, max_delay))
            if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
                report.log.append(f"attempt {attempt}: finished before the kill")
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=timeout)
            report.kills_tried += 1
            report.corrupt += check_run_files(out)
            report.resumed_at.append((checkpoint_step(out), None))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # Resume the same way a user would after a crash.
        command = [sys.executable, "-m", "vaekit.cli", "resume", str(out)]
    finished = json.loads((out / "status.json").read_text()).get("state") == "complete" \
        if (out / "status.json").exists() else False
    report.corrupt += check_run_files(out)
    if reference is not None and finished:
        report.identical = (same_weights(out / "model.safetensors", reference / "model.safetensors")
                            and same_weights(out / "checkpoint.safetensors", reference / "checkpoint.safetensors"))
    exact = all(before == at or (before is None and at is None) for before, at in report.resumed_at)
    if finished and not report.corrupt and exact and (reference is None or report.identical):
        report.kills_survived = report.kills_tried
    return report


def reference_run(out: Path, epochs: int = 2, checkpoint_every: int = 2, timeout: float = 300) -> None:
    """The same training, uninterrupted."""
    done = subprocess.run(train_command(out, epochs, checkpoint_every), env=vaekit_env(), capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"reference run failed: {done.stderr[-2000:]}")


# ---- crafted bad inputs ---------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    run: Callable[[], object]  # must return normally or raise VaekitError


def idx_bytes(dims: tuple[int, ...], payload: bytes | None = None, magic: bytes | None = None) -> bytes:
    header = (magic if magic is not None else bytes([0, 0, 8, len(dims)])) + struct.pack(f">{len(dims)}I", *dims)
    return header + (payload if payload is not None else bytes(int(np.prod(dims))))


def png_bytes(mode: str, size: tuple[int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(noise).convert(mode) if mode not in ("I;16", "I", "F") else Image.new(mode, size, 300)
    image.save(buffer, format="TIFF" if mode in TIFF_MODES else "PNG")
    return buffer.getvalue()


def crafted_inputs(folder: Path) -> list[Case]:
    """The corpus: each case writes its file(s) under `folder` and returns the call to try."""
    from vaekit import api, runs
    from vaekit.data.images import load_images
    from vaekit.data.text import read_csv_column, read_lines
    from vaekit.tokenizer import Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def file(name: str, data: bytes) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    # IDX files: wrong magic, sizes beyond the file, truncated gzip, absurd dimensions.
    good = idx_bytes((3, 4, 4))
    idx = {
        "idx-bad-magic": idx_bytes((3, 4, 4), magic=b"\x12\x34\x08\x03"),
        "idx-wrong-type": idx_bytes((3, 4, 4), magic=b"\x00\x00\x0d\x03"),
        "idx-zero-dims": b"\x00\x00\x08\x00",
        "idx-empty-but-huge": idx_bytes((0, 6, 2**30, 2**30), payload=b""),
        "idx-size-beyond-file": idx_bytes((60000, 28, 28), payload=bytes(100)),
        "idx-huge-dims": idx_bytes((2**32 - 1, 2**32 - 1, 2**32 - 1), payload=b""),
        "idx-header-cut": good[:7],
        "idx-trailing-garbage": good + b"x",
        "idx-empty": b"",
        "idx-gzip-truncated": gzip.compress(good)[:-12],
        "idx-gzip-garbage": b"\x1f\x8b" + bytes(30),
        "idx-one-dim": idx_bytes((5,)),
        "idx-good": good,
    }
    for name, data in idx.items():
        path = file(f"{name}-idx3-ubyte", data)
        cases.append(Case(name, lambda p=path: load_images(str(p))))
    # Pictures of odd modes and sizes, one per folder.
    for mode, size in [("1", (5, 5)), ("P", (6, 4)), ("LA", (4, 4)), ("RGBA", (3, 7)), ("I;16", (4, 4)),
                       ("CMYK", (4, 4)), ("L", (1, 1)), ("L", (5000, 1)), ("F", (3, 3)), ("I", (3, 3))]:
        name = f"image-{mode.replace(';', '')}-{size[0]}x{size[1]}"
        ext = "tif" if mode in TIFF_MODES else "png"
        file(f"{name}/a.{ext}", png_bytes(mode, size))
        cases.append(Case(name, lambda p=folder / name: load_images(str(p))))
    file("image-truncated/a.png", png_bytes("RGB", (20, 20))[:60])
    cases.append(Case("image-truncated", lambda: load_images(str(folder / "image-truncated"))))
    file("image-not-an-image/a.png", b"<html>not a picture</html>")
    cases.append(Case("image-not-an-image", lambda: load_images(str(folder / "image-not-an-image"))))
    file("npy-pickle.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"
         .ljust(128, b" ") + b"\n" + b"\x80\x04K\x01.")
    cases.append(Case("npy-object-array", lambda: load_images(str(folder / "npy-pickle.npy"))))
    # Text: invalid UTF-8, control characters, a 1 MB line, ragged CSV.
    texts = {
        "text-invalid-utf8.txt": b"good line\n\xff\xfe bad bytes \xc3\n",
        "text-controls.txt": "a\x00b\x07c\x1b[31m red\r\x0cd\n\x7f\x85\u2028e\n".encode(),
        "text-1mb-line.txt": b"word " * 200_000 + b"\nshort line\n",
        "text-empty.txt": b"",
        "text-blank.txt": b"\n \n\t\n",
        "text-bom.txt": b"\xef\xbb\xbfhello world\n",
    }
    for name, data in texts.items():
        path = file(name, data)
        cases.append(Case(name, lambda p=path: read_lines(p)))
    csvs = {
        "csv-ragged.csv": b"text,label\nhello,1\nworld\nthree,fields,here\n",
        "csv-unclosed-quote.csv": b'text,label\n"never closed,1\n',
        "csv-header-only.csv": b"text,label\n",
        "csv-invalid-utf8.csv": b"text\n\xff\n",
        "csv-huge-field.csv": b'text\n"' + b"x" * 200_000 + b'"\n',
    }
    for name, data in csvs.items():
        path = file(name, data)
        cases.append(Case(name, lambda p=path: read_csv_column(p, "text")))
    # Tokenizer and run configs with hostile JSON.
    hostile_json = {
        "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
        "huge-number": b'{"format": "vaekit-tokenizer", "format_version": 1e999999, "config": {}, "words": ["a"]}',
        "nan": b'{"format": "vaekit-tokenizer", "format_version": NaN, "config": {}, "words": ["a"]}',
        "wrong-types": b'{"format": "vaekit-tokenizer", "format_version": 1, "config": {"max_vocab": "all"}, '
                       b'"words": [1, 2]}',
        "huge-vocab": b'{"format": "vaekit-tokenizer", "format_version": 1, "config": {"max_vocab": 1000000000000},'
                      b' "words": ["a"]}',
        "not-json": b"\x00\x01\x02",
    }
    for name, data in hostile_json.items():
        path = file(f"tokenizer-{name}.json", data)
        cases.append(Case(f"tokenizer-{name}", lambda p=path: Tokenizer.load(p)))
    base = {"format": runs.FORMAT, "format_version": runs.FORMAT_VERSION, "kind": "image",
            "model": {"name": "seed", "config": {"image_shape": [1, 8, 8], "latent_dim": 2}},
            "data": {"data": "digits"}, "train": {}}
    configs = {
        "newer-version": {**base, "format_version": runs.FORMAT_VERSION + 1},
        "older-version": {**base, "format_version": 0},
        "latent-negative": {**base, "model": {"name": "seed", "config": {"latent_dim": -1}}},
        "vocab-huge": {**base, "kind": "text", "model": {"name": "text-rnn", "config": {"vocab_size": 10**12}}},
        "units-empty": {**base, "kind": "text", "model": {"name": "text-seed", "config": {"encoder_units": []}}},
        "image-huge": {**base, "model": {"name": "conv", "config": {"image_shape": [4, 4096, 4096]}}},
        "image-shape-long": {**base, "model": {"name": "conv", "config": {"image_shape": [1] * 10**5}}},
        "latent-string": {**base, "model": {"name": "seed", "config": {"latent_dim": "2"}}},
        "latent-float": {**base, "model": {"name": "seed", "config": {"latent_dim": 2.5}}},
        "latent-bool": {**base, "model": {"name": "seed", "config": {"latent_dim": True}}},
        "unknown-key": {**base, "model": {"name": "seed", "config": {"evil": "__import__('os')"}}},
        "unknown-model": {**base, "model": {"name": "../../etc/passwd"}},
        "kind-unknown": {**base, "kind": "audio"},
        "data-wrong-type": {**base, "data": {"data": 5}},
        "data-not-object": {**base, "data": [1, 2]},
        "model-not-object": {**base, "model": "seed"},
        "config-list": [1, 2, 3],
    }
    for name, config in configs.items():
        run = folder / f"run-{name}"
        file(f"run-{name}/config.json", json.dumps(config).encode())
        cases.append(Case(f"run-{name}", lambda r=run: api.load(r)))
    file("run-deep/config.json", b'{"format": "vaekit-run", "a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    cases.append(Case("run-deep-nesting", lambda: api.load(folder / "run-deep")))
    file("run-nan/config.json", json.dumps(base).replace('"train": {}', '"train": {"lr": NaN}').encode())
    cases.append(Case("run-nan-lr", lambda: api.resume(folder / "run-nan", echo=lambda *a: None)))
    file("run-bigint/config.json", json.dumps({**base, "train": {"seed": 10**400}}).encode())
    cases.append(Case("run-bigint-seed", lambda: api.resume(folder / "run-bigint", echo=lambda *a: None)))
    # A pickle named like a checkpoint: never unpickled (the payload would create a file).
    pwned = folder / "PWNED"
    file("run-pickle/config.json", json.dumps(base).encode())
    file("run-pickle/model.safetensors", pickle_bomb(pwned))
    file("run-pickle/checkpoint.safetensors", pickle_bomb(pwned))
    cases.append(Case("run-pickle-weights", lambda: api.load(folder / "run-pickle")))
    cases.append(Case("run-pickle-checkpoint", lambda: api.resume(folder / "run-pickle", echo=lambda *a: None)))
    return cases


class _Bomb:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # what torch.load / pickle.load would call: exec(code)
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def pickle_bomb(marker: Path) -> bytes:
    """A pickle whose loading runs code (it creates `marker`); building it runs nothing."""
    return pickle.dumps(_Bomb(marker))


def try_case(case: Case) -> tuple[bool, str]:
    """(handled cleanly, what happened): a result or a VaekitError is clean; anything else is not."""
    import warnings

    from vaekit.errors import VaekitError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.run()
    except VaekitError as e:
        return True, f"VaekitError: {e}"
    except Exception as e:  # noqa: BLE001 - the point is to catch what should not escape
        return False, f"{type(e).__name__}: {e}"
    return True, "ok"

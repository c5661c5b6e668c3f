"""Fault injection shared by tests/test_faults.py, tests/test_fuzz.py and bench/faults.py.

- `kill_resume_loop`: a real `vaekit train` process killed with SIGKILL at random moments and
  resumed each time, checking the run directory after every kill.
- `check_run_files`: every file of a run directory parses (JSON, safetensors, PNG).
- `crafted_inputs`: a corpus of hostile files (generated, never committed) with the reader that
  must answer each one with a result or a VaekitError.
"""
from __future__ import annotations

import contextlib
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
    orphans: list = field(default_factory=list)  # --nproc workers still running 30 s after a kill
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


@dataclass
class KillJob:
    """A run to kill: the command that starts it (it writes the run `out`), the one that resumes it,
    its total optimizer steps, and which process a kill hits: "process" (the one started),
    "rank1" (rank 1 of a --nproc 2 job) or "launcher" (the --nproc launcher itself)."""

    kind: str
    command: list[str]
    out: Path
    total_steps: int
    resume: list[str] | None = None  # default: vaekit resume OUT
    victim: str = "process"
    restart: list[str] | None = None  # after a kill that left no checkpoint, when resume refuses (refine)

    def resume_command(self) -> list[str]:
        return self.resume or [sys.executable, "-m", "vaekit.cli", "resume", str(self.out)]


def kill_resume_loop(out: Path, kills: int, seed: int, reference: Path | None = None, max_delay: float = 1.0,
                     jitter: float = 0.25, timeout: float = 120.0, epochs: int = 2,
                     checkpoint_every: int = 2, job: KillJob | None = None) -> KillReport:
    """Train into `out`, SIGKILL the process `kills` times at random moments (seeded), resuming
    after each; then let the last resume finish and compare with `reference` (an uninterrupted
    run of the same command), if given. `job` is any kind of run (default: the image training of
    train_command).

    The first kill comes 0..max_delay seconds after the run directory appears (start-up or the
    first steps). Each later one waits for a random step between where the resume started and
    its share of the steps left, then 0..jitter seconds more: a random point of the step and
    checkpoint-writing cycle, with training left for the next kills however fast the machine.
    Both waits end early when the last checkpoint appears, so a kill aimed at the end lands while
    the run finishes (plots, final files) rather than after it has exited.
    """
    job = job or KillJob("image", train_command(out, epochs, checkpoint_every), out, epochs * -(-1438 // 32))
    rng, report, env = random.Random(seed), KillReport(), vaekit_env()
    total_steps = job.total_steps
    logs = out.parent / f"{out.name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    command, resuming = job.command, False
    for attempt in range(kills + 1):
        log = logs / f"{attempt}.out"
        started = time.monotonic()
        with open(log, "wb") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            # A resume says where it starts once the checkpoint is loaded (resume_start); a fresh run
            # has started once config.json (written last before training) exists; a restarted refine
            # once its first checkpoint (step 0, before any step) exists.
            ready = ((lambda log=log: resume_start(log.read_text()) is not None) if resuming else
                     (lambda: (out / "checkpoint.safetensors").exists()) if attempt else
                     (lambda: (out / "config.json").exists()))
            if not _wait_for(ready, proc, timeout):
                report.log.append(f"attempt {attempt}: never started: {log.read_text()[-2000:]}")
                break
            if resuming:
                report.resume_seconds.append(time.monotonic() - started)
                before = report.resumed_at[-1][0]
                (at,) = resume_start(log.read_text())
                report.resumed_at[-1] = (before, before if at == "complete" else at)
            if attempt == kills:
                proc.wait(timeout=timeout)
                break
            the_end = functools.partial(_reached, out, total_steps)
            if attempt:
                start = report.resumed_at[-1][1] or 0
                share = max(1, (total_steps - start) // (kills - attempt + 1))
                _wait_for(functools.partial(_reached, out, start + rng.randint(1, share)), proc, timeout)
                _wait_for(_any(the_end, _after(rng.uniform(0, jitter))), proc, timeout)
            else:
                _wait_for(_any(the_end, _after(rng.uniform(0, max_delay))), proc, timeout)
            if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
                report.log.append(f"attempt {attempt}: finished before the kill")
                break
            victim, workers = _victim(proc, job.victim), _children(proc.pid)
            os.kill(victim, signal.SIGKILL)
            _wait_group_gone(proc, timeout)
            # Workers of a --nproc job live in sessions of their own: they must die with the launcher
            # (or be stopped by it when a rank dies) before anything resumes the run.
            if not _wait_until(functools.partial(_all_gone, workers), 30):
                report.orphans += [w for w in workers if _state(w) not in ("Z", None)]
                for w in report.orphans:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(w, signal.SIGKILL)
            report.kills_tried += 1
            report.corrupt += check_run_files(out)
            report.resumed_at.append((checkpoint_step(out), None))
        finally:
            _end_group(proc)
        # Resume the same way a user would after a crash (a refine killed before its first
        # checkpoint is refused by resume, which says to run refine again).
        resuming = not (job.restart and checkpoint_step(out) is None)
        command = job.resume_command() if resuming else job.restart
    finished = json.loads((out / "status.json").read_text()).get("state") == "complete" \
        if (out / "status.json").exists() else False
    report.corrupt += check_run_files(out)
    if reference is not None and finished:
        report.identical = (same_weights(out / "model.safetensors", reference / "model.safetensors")
                            and same_weights(out / "checkpoint.safetensors", reference / "checkpoint.safetensors"))
    exact = all(before == at or (before is None and at is None) for before, at in report.resumed_at)
    if finished and not report.corrupt and not report.orphans and exact and (reference is None or report.identical):
        report.kills_survived = report.kills_tried
    return report


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _all_gone(pids: list[int]) -> bool:
    return all(_state(pid) in ("Z", None) for pid in pids)


def _after(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


def _any(*predicates: Callable[[], bool]) -> Callable[[], bool]:
    return lambda: any(p() for p in predicates)


def _children(pid: int) -> list[int]:
    """Every descendant of pid (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _victim(proc: subprocess.Popen, which: str) -> int:
    """The pid a kill hits: the process started, or rank 1 of the --nproc job it launched."""
    if which != "rank1":
        return proc.pid
    for pid in _children(proc.pid):
        try:
            if b"RANK=1\0" in Path(f"/proc/{pid}/environ").read_bytes().replace(b"LOCAL_RANK", b"L"):
                return pid
        except OSError:
            continue
    raise RuntimeError("no rank 1 process found under the launcher")


def _wait_group_gone(proc: subprocess.Popen, timeout: float) -> None:
    """Wait for the killed process and every process it started (the --nproc workers)."""
    proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(_state(pid) not in ("Z", None) for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _end_group(proc: subprocess.Popen) -> None:
    """Leave nothing running: the process and its group (the harness's own session)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def reference_run(out: Path, epochs: int = 2, checkpoint_every: int = 2, timeout: float = 300) -> None:
    """The same training, uninterrupted."""
    done = subprocess.run(train_command(out, epochs, checkpoint_every), env=vaekit_env(), capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"reference run failed: {done.stderr[-2000:]}")


# ---- every kind of run -------------------------------------------------------------------------
VAEKIT = [sys.executable, "-m", "vaekit.cli"]
TRAIN_FLAGS = ["--threads", "1", "--seed", "7", "--no-progress"]
TEXT_MODEL = ["--embed-dim", "8", "--encoder-dim", "8", "--decoder-dim", "16", "--latent-dim", "4",
              "--no-tie-embeddings"]
WORDS = "the a cat dog sat ran on under mat log red big small quickly slowly and".split()


def write_corpus(path: Path, n: int = 240, seed: int = 3) -> Path:
    """n short sentences of a tiny vocabulary (lengths 3..12): several length buckets."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "\n" for _ in range(n)))
    return path


def train_commands(kind: str, out: Path, data: Path | str | None = None) -> list[str]:
    """A short deterministic training of `kind` into `out` (one thread, frequent checkpoints)."""
    every = ["--checkpoint-every", "3"]
    if kind == "text":
        return [*VAEKIT, "train", "text", "--data", str(data), "--out", str(out), *TEXT_MODEL, "--epochs", "2",
                "--batch-size", "16", *every, *TRAIN_FLAGS]
    if kind == "tabular":
        return [*VAEKIT, "train", "tabular", "--data", "breast-cancer", "--latent-dim", "3", "--out", str(out),
                "--epochs", "3", "--batch-size", "32", *every, *TRAIN_FLAGS]
    if kind == "refine":  # data: the trained run to refine
        return [*VAEKIT, "refine", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "64",
                "--threads", "1", "--no-progress"]
    if kind.startswith("nproc"):
        return train_command(out) + ["--nproc", "2"]
    return train_command(out)


def kill_job(kind: str, out: Path, reference: Path, data: Path | str | None = None) -> KillJob:
    """The KillJob of `kind` ("image", "text", "tabular", "refine", "nproc-rank1", "nproc-launcher"),
    whose uninterrupted twin is `reference` (its last checkpoint gives the total steps)."""
    resume = [*VAEKIT, "resume", str(out)] + (["--nproc", "2"] if kind.startswith("nproc") else [])
    restart = train_commands(kind, out, data) + ["--overwrite"] if kind == "refine" else None
    victim = {"nproc-rank1": "rank1", "nproc-launcher": "process"}.get(kind, "process")
    return KillJob(kind, train_commands(kind, out, data), out, checkpoint_step(reference), resume, victim, restart)


def reference_for(kind: str, out: Path, data: Path | str | None = None, in_process: bool = False,
                  timeout: float = 600) -> Path:
    """The uninterrupted run of `kind` into `out` (a subprocess as the killed one, or in_process)."""
    code, said = run_cli(train_commands(kind, out, data), in_process, timeout)
    if code != 0:
        raise RuntimeError(f"reference {kind} run failed: {said[-2000:]}")
    return out


# ---- kills during the verbs that read a run ------------------------------------------------------
def verb_command(verb: str, run: Path, out: Path, data: str = "digits") -> list[str]:
    """evaluate / anomalies / embed / export of `run`, writing under `out`."""
    return {"evaluate": [*VAEKIT, "evaluate", str(run), "--data", data, "--k", "5", "--out", str(out)],
            "anomalies": [*VAEKIT, "anomalies", str(run), "--data", data, "--out", str(out), "--k", "2"],
            "embed": [*VAEKIT, "embed", str(run), "--data", data, "--out", str(out / "codes.npy")],
            "export": [*VAEKIT, "export", str(run), "--onnx", "--out", str(out)]}[verb]


def report_problems(verb: str, out: Path) -> list[str]:
    """What is wrong with a verb's output folder after a kill: a file that does not parse, or a
    report that looks complete (its last file is there) while a file it names is missing."""
    problems = check_output_files(out)
    last = {"evaluate": "evaluation.md", "anomalies": "summary.json", "export": "manifest.json"}.get(verb)
    if last and (out / last).exists():
        needed = {"evaluate": ["evaluation.json"], "anomalies": ["scores.csv", "histogram.png"],
                  "export": []}[verb]
        if verb == "export":
            needed = [g["file"] for g in json.loads((out / last).read_text())["graphs"].values()]
        if verb == "evaluate":
            needed += list(json.loads((out / "evaluation.json").read_text()).get("plots", {}).values())
        problems += [f"{last} is written but {name} is missing" for name in needed if not (out / name).exists()]
    return problems


def check_output_files(folder: Path) -> list[str]:
    """check_run_files plus the formats the verbs write (.npy, .csv, .onnx, .md)."""
    import csv

    problems = check_run_files(folder) if folder.exists() else []
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        try:
            if path.suffix == ".npy":
                np.load(path, allow_pickle=False)
            elif path.suffix == ".csv":
                with open(path, newline="") as f:
                    rows = list(csv.reader(f))
                if not rows or len({len(r) for r in rows}) != 1:
                    raise ValueError("ragged or empty")
            elif path.suffix == ".onnx":
                import onnx

                onnx.checker.check_model(onnx.load(str(path)))
            elif path.suffix == ".md" and not path.read_text().strip():
                raise ValueError("empty")
        except Exception as e:  # noqa: BLE001 - any failure to read is the finding
            problems.append(f"{path.name}: {type(e).__name__}: {e}")
    return problems


@dataclass
class VerbKill:
    verb: str
    killed: bool = False
    problems: list = field(default_factory=list)
    rerun_ok: bool = False
    rerun_needed_overwrite: bool = False
    log: str = ""


def kill_verb(verb: str, run: Path, out: Path, seed: int, jitter: float = 0.5, timeout: float = 300,
              data: str = "digits", in_process: bool = False) -> VerbKill:
    """Run the verb, SIGKILL it 0..jitter s after its first output file appears (the writing phase),
    check the output folder, then rerun it the way its message says (--overwrite where it asks)
    and check the folder is a complete report."""
    rng, result, env = random.Random(seed), VerbKill(verb), vaekit_env()
    command = verb_command(verb, run, out, data)
    if verb == "embed":  # embed writes files into an existing folder
        out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wrote = lambda: out.exists() and any(p.is_file() for p in out.rglob("*"))  # noqa: E731
        _wait_for(wrote, proc, timeout)
        _wait_for(_after(rng.uniform(0, jitter)), proc, timeout)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            result.killed = True
        proc.wait(timeout=timeout)
    finally:
        _end_group(proc)
    result.problems = report_problems(verb, out)
    rerun = functools.partial(run_cli, in_process=in_process, timeout=timeout)
    code, said = rerun(command)
    if code != 0 and "--overwrite" in said:
        result.rerun_needed_overwrite = True
        code, said = rerun(command + ["--overwrite"])
    result.log = said[-2000:]
    complete = {"evaluate": "evaluation.md", "anomalies": "summary.json", "export": "manifest.json",
                "embed": "codes_latent.png"}[verb]
    result.rerun_ok = code == 0 and (out / complete).exists() and not report_problems(verb, out)
    return result


def run_cli(command: list[str], in_process: bool = False, timeout: float = 600) -> tuple[int, str]:
    """(exit code, stdout + stderr) of a vaekit command; in_process calls vaekit.cli.main (no
    interpreter start: the test suite's choice where the process boundary is not the point)."""
    if in_process:
        from vaekit.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(command[3:])
        return code, out.getvalue() + err.getvalue()
    done = subprocess.run(command, env=vaekit_env(), capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


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
    from vaekit.data.sources import load_images
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

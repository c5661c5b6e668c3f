"""Generated bad inputs for every reader and every verb's options (issue 30): seeded mutations of
good files (byte flips, cuts, spliced garbage, hostile header fields and JSON values) and hostile
option values, each a Case that must end in a result, a VaekitError or a clean CLI exit (0 or 2)
within its time limit, never another exception, a hang or a changed file of the user's.

`generated_inputs(folder, templates, seed, scale)` builds the corpus: scale 1 gives about 700
cases (bench/faults.py); tests/test_fuzz_generated.py takes a small slice of it. `run_cases`
runs them with a per-case time limit (SIGALRM) and checks that no file that existed before a case
was changed by it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import random
import shutil
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .faultlib import Case, idx_bytes, png_bytes


# ---- mutations -------------------------------------------------------------------------------------
def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three of: flip bytes, cut, splice garbage in, repeat a slice, zero a slice."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        how = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if how == 0 and data:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif how == 1:
            data = data[:at]
        elif how == 2:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif how == 3 and data:
            piece = data[at:at + rng.randint(1, 200)]
            data[at:at] = piece * rng.randint(1, 20)
        elif how == 4:
            data[at:at + rng.randint(1, 32)] = bytes(rng.randint(1, 32))
        else:
            data[at:at] = rng.choice([b"\x00", b"\xff\xfe", b"\n", b",", b'"', b"\r", b"\xc3", b"NaN", b"-1",
                                      b"99999999999999999999", b"\xef\xbb\xbf", b"[" * 64])
    return bytes(data)


HOSTILE_JSON = [None, True, False, 0, -1, 2**63, -(2**63), 10**400, 1e308, float("nan"), float("inf"), -0.0, "",
                "x" * 10_000, "../../etc/passwd", "\x00", "NaN", [], [None], [1] * 1000, {}, {"a": {"b": {}}},
                "__import__('os')", 2.5, "2", [[[[]]]]]


def mutate_json(value, rng: random.Random, depth: int = 0):
    """A copy of a JSON value with one field replaced by a hostile value, deleted, or added."""
    if isinstance(value, dict) and value and depth < 4:
        key = rng.choice(sorted(value))
        out = dict(value)
        how = rng.randrange(4)
        if how == 0:
            del out[key]
        elif how == 1:
            out[key] = rng.choice(HOSTILE_JSON)
        elif how == 2:
            out["unexpected_" + str(rng.randrange(100))] = rng.choice(HOSTILE_JSON)
        else:
            out[key] = mutate_json(value[key], rng, depth + 1)
        return out
    if isinstance(value, list) and value and depth < 4:
        out = list(value)
        i = rng.randrange(len(out))
        out[i] = mutate_json(out[i], rng, depth + 1) if rng.random() < 0.5 else rng.choice(HOSTILE_JSON)
        return out if rng.random() < 0.8 else out[:rng.randrange(len(out))]
    return rng.choice(HOSTILE_JSON)


def json_bytes(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# ---- good files to mutate ---------------------------------------------------------------------------
NPY_MAGIC = b"\x93NUMPY"


def npy_bytes(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def safetensors_header(header: dict, payload: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


# ---- the corpus -------------------------------------------------------------------------------------
@dataclass
class Templates:
    """Trained runs whose files are mutated: a small image run and a small text run."""

    image: Path
    text: Path
    table: Path | None = None


def generated_inputs(folder: Path, templates: Templates, seed: int = 0, scale: float = 1.0) -> list[Case]:
    """About 700 * scale cases over every reader and every verb's options (see the module docstring)."""
    from vaekit import api, runs
    from vaekit.data.images import read_array, read_folder, read_idx
    from vaekit.data.sources import load_images
    from vaekit.data.tabular import read_table
    from vaekit.data.text import read_csv_column, read_lines
    from vaekit.tokenizer import Tokenizer

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    n = lambda base: max(1, round(base * scale))  # noqa: E731

    def file(name: str, data: bytes) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    # IDX: mutations of a good file, plain and gzipped.
    good_idx = idx_bytes((5, 4, 4), bytes(range(80)))
    for i in range(n(70)):
        data = mutate(good_idx, rng)
        if i % 3 == 0:
            import gzip

            data = mutate(gzip.compress(good_idx), rng) if i % 2 else gzip.compress(data)
        path = file(f"idx/{i}-idx3-ubyte" + (".gz" if i % 3 == 0 else ""), data)
        cases.append(Case(f"idx-{i}", lambda p=path: (read_idx(p), load_images(str(p)))))
    # npy / npz: mutated headers and payloads, arrays of odd dtypes and shapes, npz with odd members.
    good_npy = npy_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    good_npz = npz_bytes(x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 2]))
    odd = [np.zeros((0, 4, 4), np.uint8), np.full((2, 4, 4), np.nan, np.float32), np.full((2, 4, 4), 300, np.int32),
           np.zeros((2, 5, 4, 4, 1), np.uint8), np.zeros((2,), "U3"), np.zeros((2, 4, 4), np.complex64),
           np.zeros((2, 4, 4), bool), np.zeros((2, 2, 4, 4), np.uint8), np.full((1, 1, 1), -5, np.int8),
           np.zeros((2, 4, 4), np.float16) + 2, np.zeros((2, 4, 4), "V2"), np.zeros((3, 4, 4), ">f8")]
    for i in range(n(80)):
        if i < len(odd):
            data = npy_bytes(odd[i]) if i % 2 else npz_bytes(x=odd[i], y=np.arange(len(odd[i]) + i % 3))
        else:
            data = mutate(good_npy if i % 2 else good_npz, rng)
        suffix = "npy" if data.startswith(NPY_MAGIC) else "npz"
        path = file(f"arrays/{i}.{suffix}", data)
        cases.append(Case(f"array-{i}", lambda p=path: (read_array(p), read_table(str(p)))))
    # Image folders: mutated pictures, mixed sizes, classes with nothing, non-pictures.
    pictures = [png_bytes("RGB", (6, 6)), png_bytes("L", (6, 6)), png_bytes("RGBA", (5, 7))]
    for i in range(n(60)):
        root = folder / f"pictures/{i}"
        for j in range(rng.randint(1, 4)):
            sub = f"class{j % 2}/" if i % 2 else ""
            data = rng.choice(pictures)
            file(f"pictures/{i}/{sub}{j}.{rng.choice(['png', 'jpg', 'gif', 'bmp', 'webp'])}",
                 mutate(data, rng) if rng.random() < 0.7 else data)
        size = rng.choice([None, 4, (3, 5), 0, -1, (0, 2), 100_000])
        channels = rng.choice([None, 1, 3, 4, 0, 2])
        cases.append(Case(f"pictures-{i}", lambda r=root, s=size, c=channels: read_folder(r, s, c)))
    # Text: mutations of a good corpus, with every reader option.
    good_text = "".join(f"the cat sat on mat number {i}\n" for i in range(30)).encode()
    for i in range(n(60)):
        path = file(f"text/{i}.txt", mutate(good_text, rng))
        errors, chars, cut = rng.choice(["strict", "replace"]), rng.choice([1, 5, 100, 10_000]), rng.random() < 0.5
        cases.append(Case(f"text-{i}", lambda p=path, e=errors, m=chars, t=cut:
                          read_lines(p, encoding_errors=e, max_chars=m, truncate=t)))
    # CSV: text columns and tables.
    good_csv = "text,label,a,b\n" + "".join(f"sentence {i},{i % 3},{i * 0.5},{-i}\n" for i in range(30))
    for i in range(n(80)):
        path = file(f"csv/{i}.csv", mutate(good_csv.encode(), rng))
        if i % 2:
            column, header = rng.choice(["text", "label", 0, 3, 9, -1, "missing", ""]), rng.random() < 0.8
            cases.append(Case(f"csv-column-{i}", lambda p=path, c=column, h=header: read_csv_column(p, c, header=h)))
        else:
            delimiter = rng.choice([",", ";", "\t"])
            cases.append(Case(f"csv-table-{i}", lambda p=path, d=delimiter: read_table(str(p), d)))
    # tokenizer.json: mutated JSON values and bytes.
    good_tokenizer = json.loads((templates.text / "tokenizer.json").read_text())
    for i in range(n(60)):
        data = json_bytes(mutate_json(good_tokenizer, rng)) if i % 3 else mutate(
            (templates.text / "tokenizer.json").read_bytes(), rng)
        path = file(f"tokenizers/{i}.json", data)
        cases.append(Case(f"tokenizer-{i}", lambda p=path: Tokenizer.load(p)))
    # safetensors: hostile headers (offsets, dtypes, shapes, sizes) and mutated real files.
    real = (templates.image / runs.WEIGHTS).read_bytes()
    headers = [
        {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}},
        {"w": {"dtype": "F32", "shape": [2**31, 2**31], "data_offsets": [0, 16]}},
        {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 2**62]}},
        {"w": {"dtype": "EVIL", "shape": [2], "data_offsets": [0, 8]}},
        {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
        {"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}},
        {"__metadata__": {"trainer": "{" * 1000}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
        {"__metadata__": [1, 2]},
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
    ]
    for i in range(n(70)):
        if i < len(headers):
            data = safetensors_header(headers[i], bytes(16))
        elif i % 4 == 0:
            data = struct.pack("<Q", rng.choice([0, 2**63, 2**40, len(real)])) + real[8:200]
        else:
            data = mutate(real[:200], rng) + real[200:] if i % 2 else mutate(real, rng)
        path = file(f"safetensors/{i}.safetensors", data)
        cases.append(Case(f"safetensors-{i}", lambda p=path: runs.load_tensors(p)))
    # Run directories: one file of a trained run mutated (config.json, weights, checkpoint, status,
    # metrics, tokenizer, standardize), then loaded and used.
    sources = [templates.image, templates.text] + ([templates.table] if templates.table else [])
    for i in range(n(110)):
        source = sources[i % len(sources)]
        run = folder / f"runs/{i}"
        shutil.copytree(source, run, ignore=shutil.ignore_patterns("tb", "plots", "*.png"))
        names = [p.name for p in sorted(run.iterdir()) if p.is_file()]
        name = rng.choice(names)
        target = run / name
        if name.endswith(".json") and rng.random() < 0.7:
            target.write_bytes(json_bytes(mutate_json(json.loads(target.read_text()), rng)))
        elif rng.random() < 0.15:
            target.unlink()
        else:
            target.write_bytes(mutate(target.read_bytes(), rng))
        cases.append(Case(f"run-{i}-{name}", lambda r=run: _use_run(api.load(r))))
    cases += verb_cases(folder / "verbs", templates, rng, n(140))
    return cases


def _use_run(run) -> None:
    """What every verb does first with a loaded run: its model answers, its kind's extras load."""
    import torch

    with torch.no_grad():
        run.sample(2)


# ---- verbs' options -------------------------------------------------------------------------------
BAD_VALUES = ["-1", "0", "nan", "inf", "-inf", "1e309", "99999999999999", "2.5", "", "abc", "\x01", "/",
              "/dev/null", "../..", "-", "--", "1e-320", "0x10", "1_000", " 3", "３"]
VERB_OPTIONS = {  # verb -> (options taking a value, flags); data-less verbs get no --data
    "sample": (["-n", "--seed", "--temperature", "--out", "--top-k", "--top-p",
                "--decode-temperature"], ["--overwrite"]),
    "reconstruct": (["-n", "--data", "--column", "--out", "--data-dir"], ["--overwrite"]),
    "embed": (["--data", "--limit", "--view", "--precision", "--out", "--column"], ["--overwrite"]),
    "anomalies": (["--data", "--contamination", "--threshold", "--score", "--k", "-n", "--limit", "--out"],
                  ["--overwrite"]),
    "interpolate": (["--data", "--index", "--steps", "--out"], ["--overwrite"]),
    "manifold": (["-n", "--span", "--out"], ["--overwrite"]),
    "export": (["--out"], ["--onnx", "--overwrite"]),
    "evaluate": (["--data", "--out", "--k", "--device", "--column", "--batch-size"], ["--overwrite"]),
    "vary": (["-n", "--spread", "--seed", "--out"], ["--overwrite"]),
    "summary": (["--model", "--latent-dim", "--image-shape"], []),
    "resume": (["--epochs", "--nproc"], []),
    "refine": (["--out", "--epochs", "--batch-size", "--lr", "--free-bits", "--precision", "--device",
                "--threads"], ["--overwrite"]),
    "train image": (["--data", "--out", "--epochs", "--batch-size", "--lr", "--latent-dim", "--model",
                     "--checkpoint-every", "--threads", "--device", "--precision", "--val-fraction", "--seed"],
                    ["--overwrite"]),
    "train text": (["--data", "--out", "--epochs", "--embed-dim", "--max-vocab", "--latent-dim", "--column"],
                   ["--overwrite"]),
    "train tabular": (["--data", "--out", "--epochs", "--latent-dim", "--label", "--columns"], ["--overwrite"]),
    "compare": (["--out"], []),
}
# Values that, were they accepted, would make the case long: these options get them only with a
# companion bad value, so every case ends early (the time limit catches any that does not).
SLOW_IF_VALID = {"--epochs", "-n", "--k", "--steps", "--limit", "--max-vocab", "--embed-dim", "--latent-dim"}


def verb_cases(folder: Path, templates: Templates, rng: random.Random, count: int) -> list[Case]:
    """CLI calls with one to three hostile option values; a user's file sits where --out may point."""
    folder.mkdir(parents=True, exist_ok=True)
    users = folder / "users-file.txt"
    users.write_text("the user's own file\n")
    values = BAD_VALUES + [str(users), str(folder), str(folder / "new" / "deep" / "out"), str(templates.image),
                           str(templates.text / "tokenizer.json")]
    cases = []
    verbs = sorted(VERB_OPTIONS)
    known = parser_options()
    for i in range(count):
        verb = verbs[i % len(verbs)]
        options, flags = ([o for o in names if o in known[verb]] for names in VERB_OPTIONS[verb])
        run = templates.text if (verb in ("vary",) or (i // len(verbs)) % 3 == 1) else templates.image
        argv = verb.split()
        if not verb.startswith("train") and verb != "summary":
            argv.append(rng.choice([str(run), str(run), str(users), str(folder / "missing"), ""]))
            if verb == "compare":
                argv.append(rng.choice([str(run), str(users), "x"]))
        if verb == "vary":
            argv.append(rng.choice(["the cat sat", "", "\x00\x01", "word " * 2000]))
        chosen = rng.sample(options, min(len(options), rng.randint(1, 3)))
        if verb in ("reconstruct", "embed", "anomalies", "evaluate") and "--data" not in chosen:
            chosen.append("--data")  # required: without it argparse answers every case the same way
        given = rng.sample(flags, rng.randint(0, len(flags)))
        # --overwrite may replace what --out names: the user's file is offered only without it
        pool = [v for v in values if v != str(users)] if "--overwrite" in given else values
        for option in chosen:
            argv += [option, rng.choice(pool)]
        argv += given
        if verb.startswith("train") or verb in ("resume", "refine"):
            argv += ["--epochs", rng.choice(["0", "-3", "nan", "1e9x"]), "--no-progress"]
        elif any(o in SLOW_IF_VALID for o in chosen):
            argv += [rng.choice(["--out", "--data"]) if verb != "summary" else "--latent-dim", rng.choice(["", "/"])]
        cases.append(Case(f"cli-{i}-{verb.replace(' ', '-')}", functools.partial(_cli, argv)))
    return cases


def parser_options() -> dict[str, set[str]]:
    """Every verb's option strings, from the CLI's own parser (so the corpus follows the CLI)."""
    import argparse

    from vaekit.cli import build_parser

    found: dict[str, set[str]] = {}

    def walk(parser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}".strip())
        found[prefix] = {o for a in parser._actions for o in a.option_strings}

    walk(build_parser(), "")
    return found


class CliCrash(Exception):
    """The CLI printed a traceback or ended with a code other than 0, 2 or argparse's 2."""


def _cli(argv: list[str]) -> str:
    from vaekit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    said = err.getvalue()
    if code not in (0, 2) or "Traceback" in said:
        raise CliCrash(f"exit {code}: {said[-500:]}")
    if code == 2 and not said.strip():
        raise CliCrash("exit 2 without a message")
    return f"exit {code}" + (f": {said.strip().splitlines()[-1][:60]}" if said.strip() else "")


# ---- running the corpus -----------------------------------------------------------------------------
class Hang(Exception):
    """A case ran past its time limit."""


@dataclass
class FuzzReport:
    tried: int = 0
    handled: int = 0
    failures: list = field(default_factory=list)  # (case, what happened)
    hangs: int = 0
    files_changed: list = field(default_factory=list)
    seconds: float = 0.0
    families: dict = field(default_factory=dict)


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cases(cases: list[Case], folder: Path, limit: float = 30.0,
              on_case: Callable[[Case, bool, str], None] | None = None) -> FuzzReport:
    """Try every case with a time limit; a file under `folder` that existed before and was changed
    or removed afterwards is counted (cases may create new files, never alter existing ones)."""
    import warnings

    from vaekit.errors import VaekitError

    report, before = FuzzReport(), _snapshot(folder)
    started = time.monotonic()

    def alarm(signum, frame):
        raise Hang(f"ran past {limit} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    cwd = Path.cwd()
    os.chdir(folder)  # relative paths among the hostile values (--out 2.5) land in the corpus
    try:
        for case in cases:
            family = case.name.split("-")[0]
            ok, what = True, "ok"
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    what = f"ok: {str(case.run())[:80]}"
            except VaekitError as e:
                what = f"VaekitError: {e}"
                if not str(e).strip():
                    ok, what = False, "VaekitError without a message"
            except Hang as e:
                ok, what = False, f"hang: {e}"
                report.hangs += 1
            except Exception as e:  # noqa: BLE001 - the point is to catch what should not escape
                ok, what = False, f"{type(e).__name__}: {str(e)[:300]}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            report.tried += 1
            report.handled += ok
            tried, handled = report.families.get(family, (0, 0))
            report.families[family] = (tried + 1, handled + ok)
            if not ok:
                report.failures.append((case.name, what))
            if on_case:
                on_case(case, ok, what)
    finally:
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
    after = _snapshot(folder)
    report.files_changed = [p for p, digest in before.items() if after.get(p) != digest]
    report.seconds = time.monotonic() - started
    return report


def make_templates(folder: Path) -> Templates:
    """Train the small runs whose files the corpus mutates (in this process, a few seconds)."""
    from vaekit.cli import main

    from .faultlib import TEXT_MODEL, write_corpus

    corpus = write_corpus(folder / "corpus.txt", n=80)
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet, contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", "image", "--out", str(folder / "image"), "--model", "seed", "--epochs", "1",
                     "--threads", "1", "--no-progress"]) == 0
        assert main(["train", "text", "--data", str(corpus), "--out", str(folder / "text"), *TEXT_MODEL,
                     "--epochs", "1", "--threads", "1", "--no-progress"]) == 0
        assert main(["train", "tabular", "--data", "iris", "--out", str(folder / "table"), "--latent-dim", "2",
                     "--epochs", "1", "--threads", "1", "--no-progress"]) == 0
    return Templates(folder / "image", folder / "text", folder / "table")

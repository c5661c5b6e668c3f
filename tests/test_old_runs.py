"""Runs written by vaekit before the modalities package (commit 1404a03) load and give the same numbers.

tests/data/runs-v1 holds three small runs (image, text, tabular) with the codes, decodings and scores
that code computed for fixed inputs (expected.json): the run-directory format is unchanged, and so is
what a loaded run does with it.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris

import vaekit

RUNS = Path(__file__).parent / "data" / "runs-v1"


def inputs(kind: str):
    if kind == "image":
        return np.round(load_digits().images[:4] * 255 / 16).astype(np.uint8)[:, None]
    if kind == "tabular":
        return load_iris().data[:4]
    return json.loads((RUNS / "text" / "expected.json").read_text())["input"]


@pytest.mark.parametrize("kind", ["image", "text", "tabular"])
def test_an_old_run_loads_and_gives_the_same_codes_outputs_and_scores(kind):
    expected = json.loads((RUNS / kind / "expected.json").read_text())
    run = vaekit.load(RUNS / kind)
    assert run.kind == kind and run.modality is vaekit.modalities.get(kind)
    x = inputs(kind)
    z = run.encode(x)
    assert np.allclose(z, expected["encode"], atol=1e-5)
    assert np.allclose(run.score(x, "elbo", k=4), expected["elbo"], atol=1e-3)
    if kind == "image":
        assert run.decode(z).sum() == pytest.approx(expected["decode_sum"], rel=1e-5)
    elif kind == "tabular":
        assert np.allclose(run.decode(z), expected["decode"], atol=1e-4)
    else:
        assert run.reconstruct(x) == expected["reconstruct"]


@pytest.mark.parametrize("kind", ["image", "tabular"])
def test_an_old_run_resumes_from_its_checkpoint(kind, tmp_path):
    """Named data (digits, iris) make these two resumable anywhere; one more epoch on the old checkpoint."""
    shutil.copytree(RUNS / kind, tmp_path / kind)
    run = vaekit.resume(tmp_path / kind, epochs=2, echo=lambda *a: None)
    history = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in history] == [1, 2] and np.isfinite(history[-1]["val_loss"])

"""bench/variations.py's summary in the issue's layout, from curve points measured in separate runs:
the default is the measured point at the default change, and the figures at EDA's BLEU lie between
the two measured points that bracket it (never extrapolated)."""
import importlib.util
import json
from pathlib import Path

import pytest

from vaekit.variations import DEFAULT_CHANGE

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "variations.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_variations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def point(bench, change, bleu, semantic):
    return {f: 0.0 for f in bench.FIGURES} | {"change": change, "bleu_in": bleu, "semantic": semantic}


def results_file(path, bench, curve, eda_bleu=70.0, weights="ab12"):
    corpus = {"run": "runs/x", "run_stamp": {"epoch": 10, "weights_sha256": weights}, "n_inputs": 100,
              "eda": point(bench, None, eda_bleu, 0.9), "curve": curve}
    path.write_text(json.dumps({"date": "d", "command": "c", "machine": "m", "corpora": {"ptb": corpus}}))
    return str(path)


def test_merged_curve_points_give_the_default_and_the_figures_at_edas_bleu(bench, tmp_path):
    low = results_file(tmp_path / "a.json", bench, [point(bench, 0.1, 74.0, 0.94), point(bench, 0.125, 71.0, 0.92)])
    default = results_file(tmp_path / "b.json", bench, [point(bench, DEFAULT_CHANGE, 42.0, 0.80)])
    out = tmp_path / "merged.json"
    bench.merge([low, default], str(out), str(tmp_path / "plot.png"))
    summary = json.loads(out.read_text())["ptb"]
    assert summary["change"] == DEFAULT_CHANGE and summary["semantic"] == 0.80
    at_eda = summary["at_eda_bleu"]
    # EDA's 70.0 lies between the 0.125 point (71.0) and the default's (42.0): 1/29 of the way down.
    assert at_eda["bleu_in"] == pytest.approx(70.0)
    assert at_eda["semantic"] == pytest.approx(0.92 - (0.92 - 0.80) / 29)
    assert at_eda["interpolated_between_changes"] == [DEFAULT_CHANGE, 0.125]


def test_no_figures_at_edas_bleu_outside_the_measured_points(bench):
    curve = [point(bench, 0.1, 74.0, 0.94), point(bench, 0.125, 71.0, 0.92)]
    assert bench.at_bleu_from_curve(curve, 75.0) is None and bench.at_bleu_from_curve(curve, 70.0) is None


def test_curve_points_of_other_weights_are_not_joined(bench, tmp_path):
    """A run trained again at the same path is another model: its points replace, never join, the curve."""
    low = results_file(tmp_path / "a.json", bench, [point(bench, 0.125, 71.0, 0.92)])
    other = results_file(tmp_path / "b.json", bench, [point(bench, DEFAULT_CHANGE, 42.0, 0.80)], weights="cd34")
    out = tmp_path / "merged.json"
    bench.merge([low, other], str(out), str(tmp_path / "plot.png"))
    merged = json.loads(out.read_text())
    assert [c["change"] for c in merged["corpora"]["ptb"]["curve"]] == [DEFAULT_CHANGE]
    assert "at_eda_bleu" not in merged.get("ptb", {})  # no bracketing points of one model: no figure

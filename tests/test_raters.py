"""Rating sheets for human judges: export (CSV, HTML, hidden key), read back, summarise, bad input."""
import csv
import dataclasses
import json
import shutil

import pytest

from vaekit.cli import main
from vaekit.errors import VaekitError
from vaekit.raters import CRITERIA, export_sheet, read_key, summarise

from .conftest import sentence_file
from .test_cli import run_cli as cli

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "the bird sang in the tree",
             "a man read the paper", "the child ate an apple", "a boy kicked the ball"] * 20
TINY = ["--embed-dim", "8", "--encoder-dim", "8", "--decoder-dim", "16", "--latent-dim", "4",
        "--epochs", "1", "--no-progress", "--batch-size", "32"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return sentence_file(tmp_path_factory, SENTENCES)


@pytest.fixture(scope="module")
def text_runs(corpus, tmp_path_factory):
    """Two text runs: a tiny trained one and a copy (the sheet tells runs apart by path, not weights)."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "text", "--data", str(corpus), "--out", str(out / "a"), *TINY]) == 0
    shutil.copytree(out / "a", out / "b")
    return out / "a", out / "b"


def untrained_image_run(path):
    """A valid image run directory (untrained weights): all the kind check needs, in milliseconds."""
    from vaekit import runs
    from vaekit.api import run_config
    from vaekit.modalities.image import ImageDataConfig
    from vaekit.models import build_model
    from vaekit.training import TrainConfig

    model = build_model("seed", image_shape=(1, 8, 8), latent_dim=2)
    path.mkdir()
    runs.save_tensors(path / runs.WEIGHTS, model.state_dict())
    runs.write_json(path / runs.CONFIG, run_config("image", model, ImageDataConfig("digits"), TrainConfig()))
    return path


def read_sheet(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fill(sheet, path, score):
    """A rater's filled sheet: score(row) -> {criterion: value}."""
    rows = read_sheet(sheet)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, **score(r)} for r in rows)
    return path


def test_export_mixes_two_runs_blind_and_summary_pairs_them(tmp_path):
    inputs = ["the cat sat", "a dog ran", "the bird sang"]
    outputs = {"A": [[f"a{i}-{j}" for j in range(2)] for i in range(3)],
               "B": [[f"b{i}-{j}" for j in range(2)] for i in range(3)]}
    paths = export_sheet(inputs, outputs, tmp_path / "sheet", seed=1)
    rows = read_sheet(paths["csv"])
    assert len(rows) == 12 and list(rows[0]) == ["item", "input_id", "input", "output", *CRITERIA]
    assert all(r[c] == "" for r in rows for c in CRITERIA)  # nothing pre-filled
    key = read_key(paths["key"])
    for r in rows:  # the key says which run wrote each output
        assert r["output"][0] == key["items"][r["item"]].lower()
    html = paths["html"].read_text()
    assert "<select" in html and "saveRatings" in html and "http" not in html  # self-contained
    # Outputs of one input are shuffled, not grouped by run: with seed 1 the order is not AABB everywhere.
    orders = ["".join(key["items"][r["item"]] for r in rows if r["input_id"] == str(i)) for i in (1, 2, 3)]
    assert any(o not in ("AABB", "BBAA") for o in orders)
    # Raters prefer run A: 5 for its outputs, 3 for B's (fluency); the paired test must see it.
    ratings = fill(paths["csv"], tmp_path / "sheet" / "ratings.csv",
                   lambda r: {"fluency": 5 if r["output"][0] == "a" else 3, "meaning": 4, "novelty": 2})
    summary = summarise(tmp_path / "sheet")
    assert summary["files"] == [str(ratings)] and summary["n_ratings"] == 12
    assert summary["runs"]["A"]["fluency"] == {"mean": 5.0, "std": 0.0, "n": 6}
    assert summary["runs"]["B"]["fluency"]["mean"] == 3.0
    paired = summary["paired"]["fluency"]
    assert paired["mean_difference"] == 2.0 and paired["a_better"] == 3 and paired["n_inputs"] == 3
    assert 0 < paired["wilcoxon_p"] <= 0.25  # 3 inputs, all the same sign: the exact test's smallest p
    assert summary["paired"]["meaning"]["ties"] == 3 and summary["paired"]["meaning"]["wilcoxon_p"] is None


def test_bad_ratings_are_clear_errors(tmp_path):
    paths = export_sheet(["a b"], {"A": [["x", "y"]]}, tmp_path / "s")
    good = {"fluency": 3, "meaning": 3, "novelty": 3}
    with pytest.raises(VaekitError, match="score is missing"):
        summarise(fill(paths["csv"], tmp_path / "s" / "ratings.csv", lambda r: {**good, "meaning": ""}))
    assert summarise(tmp_path / "s", allow_missing=True)["runs"]["A"]["meaning"]["n"] == 0
    for bad in ("6", "0", "2.5", "good", "nan"):
        fill(paths["csv"], tmp_path / "s" / "ratings.csv", lambda r, bad=bad: {**good, "novelty": bad})
        with pytest.raises(VaekitError, match="not a whole number from 1 to 5"):
            summarise(tmp_path / "s")
    ragged = tmp_path / "s" / "ratings.csv"
    ragged.write_text(paths["csv"].read_text().splitlines()[0] + "\n1-1,1,a b,x,3,3\n")
    with pytest.raises(VaekitError, match="line 2: 6 fields, the header has 7"):
        summarise(ragged)
    ragged.write_text("item,input_id,fluency\n1-1,1,3\n")
    with pytest.raises(VaekitError, match="no column meaning, novelty"):
        summarise(ragged)
    ragged.write_text(paths["csv"].read_text().replace("1-1,", "9-9,"))
    with pytest.raises(VaekitError, match="'9-9' is not in the key"):
        summarise(fill(ragged, ragged, lambda r: good))
    paths["key"].unlink()
    with pytest.raises(VaekitError, match="key file .* is missing"):
        summarise(tmp_path / "s")
    ragged.unlink()
    with pytest.raises(VaekitError, match="has no ratings"):
        summarise(tmp_path / "s")


def test_a_sheet_is_counted_once(tmp_path):
    paths = export_sheet(["a b", "c d"], {"A": [["x", "y"], ["z", "w"]]}, tmp_path / "s")
    good = {"fluency": 3, "meaning": 4, "novelty": 5}
    ann = fill(paths["csv"], tmp_path / "s" / "ratings-ann.csv", lambda r: good)
    lines = ann.read_text().splitlines()
    doubled = tmp_path / "doubled.csv"
    doubled.write_text("\n".join(lines + lines[2:3]) + "\n")  # the second item's row pasted again
    item = lines[2].split(",")[0]
    with pytest.raises(VaekitError, match=rf"doubled.csv line 6: item '{item}' is rated again \(first on line 3\)"):
        summarise(doubled, paths["key"])
    # The same file twice, by the same path, by another spelling of it, or inside its folder: refused.
    for given in ([ann, ann], [ann, tmp_path / "s" / ".." / "s" / "ratings-ann.csv"], [tmp_path / "s", ann]):
        with pytest.raises(VaekitError, match="ratings-ann.csv is given twice"):
            summarise(given)
    copy = tmp_path / "s" / "ratings-copy.csv"
    copy.write_bytes(ann.read_bytes())
    with pytest.raises(VaekitError, match="ratings-copy.csv has the same content as .*ratings-ann.csv"):
        summarise(tmp_path / "s")
    copy.unlink()
    fill(paths["csv"], tmp_path / "s" / "ratings-bob.csv", lambda r: {**good, "novelty": 1})
    assert summarise(tmp_path / "s")["n_ratings"] == 8  # two raters, four items each
    # --allow-missing skips empty scores, but a sheet with none at all was never filled in.
    unfilled = tmp_path / "s" / "ratings-cy.csv"
    unfilled.write_bytes(paths["csv"].read_bytes())
    with pytest.raises(VaekitError, match="ratings-cy.csv has no scores at all: it is an unfilled sheet"):
        summarise(tmp_path / "s", allow_missing=True)


def test_cli_output_into_a_closed_pipe_stops_quietly(tmp_path):
    import os
    import subprocess
    import sys

    paths = export_sheet(["a b"], {"A": [["x", "y"]]}, tmp_path / "s")
    fill(paths["csv"], tmp_path / "s" / "ratings.csv", lambda r: {"fluency": 3, "meaning": 4, "novelty": 5})
    read, write = os.pipe()
    os.close(read)  # the reader has gone, as `| head -1` does after its line
    try:
        done = subprocess.run([sys.executable, "-m", "vaekit.cli", "raters", "summarise", str(tmp_path / "s")],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 1 and done.stderr == ""  # no BrokenPipeError traceback


def test_export_never_overwrites(tmp_path):
    export_sheet(["a"], {"A": [["b"]]}, tmp_path / "s")
    key = (tmp_path / "s" / "key.json").read_text()
    with pytest.raises(VaekitError, match="not an empty folder"):
        export_sheet(["a"], {"A": [["c"]]}, tmp_path / "s")
    assert (tmp_path / "s" / "key.json").read_text() == key


def test_cli_export_and_summarise_two_text_runs(text_runs, corpus, tmp_path, capsys):
    run_a, run_b = text_runs
    code, out, _ = cli(capsys, "raters", "export", run_a, run_b, "--data", corpus, "-n", "4", "--variations", "2",
                       "--out", tmp_path / "sheet", "--method", "decode", "--strategy", "sample", "--top-k", "5")
    assert code == 0 and "key.json" in out
    rows = read_sheet(tmp_path / "sheet" / "sheet.csv")
    assert len(rows) == 4 * 2 * 2 and {r["input"] for r in rows} <= set(SENTENCES)
    key = json.loads((tmp_path / "sheet" / "key.json").read_text())
    assert sorted(key["runs"]) == sorted([str(run_a), str(run_b)])
    assert key["settings"]["method"] == "decode" and key["settings"]["config"]["strategy"] == "sample"
    assert key["settings"]["variations"] == 2
    fill(tmp_path / "sheet" / "sheet.csv", tmp_path / "sheet" / "ratings-ann.csv",
         lambda r: {"fluency": 4, "meaning": 2, "novelty": 5})
    fill(tmp_path / "sheet" / "sheet.csv", tmp_path / "sheet" / "ratings-bob.csv",
         lambda r: {"fluency": 2, "meaning": 2, "novelty": 5})
    code, out, _ = cli(capsys, "raters", "summarise", tmp_path / "sheet", "--json", tmp_path / "summary.json")
    assert code == 0 and "32 ratings from 2 file(s)" in out and "mean 3.00" in out and "paired" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["runs"][str(run_a)]["fluency"] == {"mean": 3.0, "std": pytest.approx(1.0328, abs=1e-4), "n": 16}


def test_a_sheet_rates_what_vary_writes(text_runs, corpus, tmp_path, capsys):
    """By default the sheet holds `vaekit vary`'s own variations (edited sentences, its defaults), not
    sentences written from the code alone: raters judge what users get."""
    import vaekit
    from vaekit.editing import EditConfig

    run_a, _ = text_runs
    code, _, _ = cli(capsys, "raters", "export", run_a, "--data", corpus, "-n", "3", "--variations", "2",
                     "--seed", "7", "--out", tmp_path / "sheet")
    assert code == 0
    key = json.loads((tmp_path / "sheet" / "key.json").read_text())
    assert key["settings"]["method"] == "edit" and key["settings"]["config"] == dataclasses.asdict(EditConfig())
    run = vaekit.load(run_a)
    rows = read_sheet(tmp_path / "sheet" / "sheet.csv")
    inputs = sorted({(int(r["input_id"]), r["input"]) for r in rows})
    for i, (input_id, sentence) in enumerate(inputs):
        shown = sorted(r["output"] for r in rows if int(r["input_id"]) == input_id)
        assert shown == sorted(run.vary(sentence, 2, 1.0, EditConfig(), seed=7 + i)), sentence


def test_cli_export_reads_the_sentences_of_a_csv_column(text_runs, tmp_path, capsys):
    import csv

    with open(tmp_path / "inputs.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"]] + [[s, i % 2] for i, s in enumerate(SENTENCES[:6])])
    code, out, _ = cli(capsys, "raters", "export", text_runs[0], "--data", tmp_path / "inputs.csv", "--column", "text",
                       "-n", "3", "--out", tmp_path / "sheet")
    assert code == 0
    assert {r["input"] for r in read_sheet(tmp_path / "sheet" / "sheet.csv")} <= set(SENTENCES[:6])


def test_cli_bad_input(text_runs, corpus, tmp_path, capsys):
    run_a, _ = text_runs
    image_run = untrained_image_run(tmp_path / "image")
    code, _, err = cli(capsys, "raters", "export", image_run, "--data", corpus, "--out", tmp_path / "x")
    assert code == 2 and "is an image run: rating sheets are for text runs" in err
    code, _, err = cli(capsys, "raters", "export", run_a, run_a, "--data", corpus, "--out", tmp_path / "x")
    assert code == 2 and "same run was given twice" in err
    code, _, err = cli(capsys, "raters", "summarise", tmp_path / "nothing.csv")
    assert code == 2 and "does not exist" in err
    (tmp_path / "lone.csv").write_text("item,fluency,meaning,novelty\n1-1,3,3,3\n")
    code, _, err = cli(capsys, "raters", "summarise", tmp_path / "lone.csv")
    assert code == 2 and "key file" in err and "is missing" in err

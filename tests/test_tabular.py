"""The tabular job: standardisation fitted on training rows and kept in the run, `vaekit train
tabular` from a CSV, the Run API of tabular runs, constant columns, and bad input through the CLI."""
import json

import numpy as np
import pytest

import vaekit
from vaekit.errors import VaekitError
from vaekit.modalities.tabular import Standardizer, TabularDataConfig, training_data

from .test_cli import run_cli

FAST = ["--epochs", "3", "--no-progress"]


def _table(tmp_path, n=120, constant=False, name="data.csv"):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)) * [1, 10, 100] + [0, 50, -3]
    lines = ["f1,f2,f3,kind" + (",flat" if constant else "")]
    for i, row in enumerate(x):
        lines.append(",".join(f"{v:.5f}" for v in row) + f",{'ab'[i % 2]}" + (",7" if constant else ""))
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path / name, x


def test_standardisation_is_fitted_on_training_rows_only(tmp_path):
    path, x = _table(tmp_path)
    prepared = training_data(TabularDataConfig(str(path), label="kind"))
    scaler = Standardizer.from_json(json.loads(prepared.files["standardize.json"]), "s")
    train = prepared.train.x.numpy()
    assert np.allclose(train.mean(0), 0, atol=1e-5) and np.allclose(train.std(0), 1, atol=1e-4)
    assert not np.allclose(scaler.mean, x.mean(0))  # the validation rows did not take part
    assert scaler.columns == ("f1", "f2", "f3") and scaler.classes == ("a", "b")
    assert prepared.train.y is not None and prepared.model_options == {"n_features": 3, "latent_dim": 2}


def test_the_progress_bar_stays_off_a_log_file(tmp_path, capsys):
    # Output that is not a terminal (a log, CI, a pipe) gets each epoch's line and no bar redrawn in it
    path, _ = _table(tmp_path)
    code, stdout, stderr = run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind",
                                   "--out", tmp_path / "run", "--epochs", "2")
    assert code == 0 and "epoch 2: train -ELBO" in stdout
    assert "it/s" not in stdout + stderr and "\r" not in stdout + stderr


def test_train_tabular_from_a_csv_and_use_the_run(tmp_path, capsys):
    path, x = _table(tmp_path)
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--out", out, *FAST)
    assert code == 0 and "96 training and 24 validation rows of 3 standardised features" in stdout
    # --no-progress hides the bar only: each epoch's line is the log; the curve is drawn for every kind
    assert "epoch 1: train -ELBO" in stdout and (out / "plots" / "training_curve.png").exists()
    assert json.loads((out / "standardize.json").read_text())["columns"] == ["f1", "f2", "f3"]
    run = vaekit.load(out)
    assert run.modality is vaekit.modalities.get("tabular")
    z = run.encode(x[:5])
    assert z.shape == (5, 2)
    decoded = run.decode(z)  # raw units again: f2 near 50, not near 0
    assert decoded.shape == (5, 3) and abs(decoded[:, 1].mean() - 50) < 30
    scores = run.score(x[:5])
    assert scores.shape == (5,) and np.isfinite(scores).all()
    # the same rows in another column order (by header name) give the same codes
    (tmp_path / "shuffled.csv").write_text("f3,f2,f1\n" + "\n".join(f"{c},{b},{a}" for a, b, c in x[:5]) + "\n")
    assert np.allclose(run.encode(run.read(str(tmp_path / "shuffled.csv")).x), z, atol=1e-4)
    # sample and reconstruct write rows in raw units under the training columns
    assert run_cli(capsys, "sample", out, "-n", "4")[0] == 0
    lines = (out / "samples.csv").read_text().splitlines()
    assert lines[0] == "f1,f2,f3" and len(lines) == 5
    assert run_cli(capsys, "reconstruct", out, "--data", path, "-n", "3", "--out", tmp_path / "r.csv")[0] == 0
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 4
    code, _, err = run_cli(capsys, "manifold", out)
    assert code == 2 and "draws images" in err
    code, _, err = run_cli(capsys, "reconstruct", out, "--data", path, "--data-dir", tmp_path)
    assert code == 2 and "reads its tables from the path given to --data" in err
    # resume reuses the saved standardisation
    assert run_cli(capsys, "train", "tabular", "--out", out, "--resume", "--epochs", "4")[0] == 0


def test_default_tabular_data_is_bundled(tmp_path, capsys):
    code, stdout, _ = run_cli(capsys, "train", "tabular", "--out", tmp_path / "wine", "--epochs", "1", "--no-progress")
    assert code == 0 and "13 standardised features" in stdout


def test_constant_columns_refused_or_dropped(tmp_path, capsys):
    path, _ = _table(tmp_path, constant=True)
    code, _, err = run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--out", tmp_path / "r",
                           *FAST)
    assert code == 2 and "constant on the training rows: flat" in err and "--drop-constant" in err
    assert not (tmp_path / "r").exists()
    code, stdout, _ = run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--drop-constant",
                              "--out", tmp_path / "r", *FAST)
    assert code == 0 and "1 constant column(s) left out" in stdout
    run = vaekit.load(tmp_path / "r")
    assert run.model.config.n_features == 3
    assert run.encode(np.ones((2, 4))).shape == (2, 2)  # rows with the constant column still fit


@pytest.mark.parametrize("content,match", [
    ("", "is empty"),
    ("a,b\n1,2\n,\n4,5\n", "line 3 has no value in any feature column"),
    ("a,b\n1,2\n3,x\n4,5\n", "not a number"),
    ("a,b\n1,2\n3,inf\n4,5\n", "infinity"),
    ("a,b\n1,\n3,\n4,NA\n", "no value on the training rows (every cell missing): b"),
    ("a,b\n1,2\n3\n4,5\n", "cells"),
])
def test_bad_tables_fail_cleanly(tmp_path, capsys, content, match):
    (tmp_path / "bad.csv").write_text(content)
    code, _, err = run_cli(capsys, "train", "tabular", "--data", tmp_path / "bad.csv", "--out", tmp_path / "r", *FAST)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_samples_spread_like_the_data(tmp_path, capsys):
    """Sampled rows are draws from p(x | z), not the decoded means: the means of a Gaussian decoder leave
    the likelihood's noise out and spread far less than the data (wine: 33-77 % per feature), so synthetic
    rows looked unlike the table. --mean still gives the means; other kinds refuse it with one message."""
    path, x = _table(tmp_path)
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--out", out, *FAST)[0] == 0
    run = vaekit.load(out)
    draws, means = run.sample(3000, seed=0), run.sample(3000, seed=0, mean=True)
    ratio = draws.std(0) / x.std(0)
    assert (ratio > 0.7).all() and (ratio < 1.5).all(), ratio
    assert (means.std(0) < 0.7 * draws.std(0)).all()
    assert np.allclose(means, run.decode(run.prior_draws(3000, 0).numpy()))
    assert np.array_equal(run.sample(5, seed=3), run.sample(5, seed=3))  # a seed gives the same rows
    # whole-number columns come out whole, every column within the training rows' range (SDV's defaults)
    rng = np.random.default_rng(1)
    counts, sizes = rng.poisson(3, 200), rng.gamma(2.0, 1.0, 200)
    (tmp_path / "c.csv").write_text("count,size\n" + "".join(f"{c},{v:.4f}\n" for c, v in zip(counts, sizes)))
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "c.csv", "--out", tmp_path / "c", *FAST)[0] == 0
    rows = vaekit.load(tmp_path / "c").sample(2000, seed=0)
    assert np.array_equal(rows[:, 0], np.round(rows[:, 0])) and not np.array_equal(rows[:, 1], np.round(rows[:, 1]))
    low, high = np.loadtxt(tmp_path / "c.csv", delimiter=",", skiprows=1).min(0), \
        np.loadtxt(tmp_path / "c.csv", delimiter=",", skiprows=1).max(0)
    train_low, train_high = np.array(json.loads((tmp_path / "c" / "standardize.json").read_text())["low"]), \
        np.array(json.loads((tmp_path / "c" / "standardize.json").read_text())["high"])
    assert (train_low >= low).all() and (train_high <= high).all()  # the training split's range, within the file's
    assert (rows >= train_low).all() and (rows <= train_high).all() and (rows[:, 1] > train_low[1]).any()
    code, _, _ = run_cli(capsys, "sample", out, "-n", "4", "--mean", "--out", tmp_path / "m.csv")
    assert code == 0 and np.allclose(np.loadtxt(tmp_path / "m.csv", delimiter=",", skiprows=1),
                                     run.sample(4, seed=0, mean=True), rtol=1e-4, atol=1e-4)


def test_word_columns_are_named_at_once_with_the_columns_that_train(tmp_path, capsys):
    """A CSV as people have them (a string ID, a city, a date beside numbers): one message names every column
    of words, not the first only, and gives the options that train; those options then do. A numeric column
    with one odd cell keeps the per-cell message (fix the row)."""
    rng = np.random.default_rng(0)
    lines = ["id,age,city,joined date,score"] + [
        f"P{i:04d},{20 + i % 50},{'Paris Lyon Nice'.split()[i % 3]},2020-01-{1 + i % 28:02d},{rng.normal():.3f}"
        for i in range(60)]
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "train", "tabular", "--data", tmp_path / "people.csv", "--out", tmp_path / "r",
                           *FAST)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    assert all(f"'{c}'" in err for c in ("id", "city", "joined date")) and "'age'" not in err
    assert "all different: a row ID?" in err and "3 different" in err
    assert "--id-column id --columns age score" in err
    # a column of dates is neither an ID nor categories: it is offered as numbers to write
    assert "dates: write them as numbers" in err and err.rstrip().endswith("--categorical city")
    code, _, err = run_cli(capsys, "train", "tabular", "--data", tmp_path / "people.csv", "--columns", "age,score",
                           "--out", tmp_path / "r", *FAST)
    assert code == 2 and "separate the names with spaces: age score" in err
    code, _, _ = run_cli(capsys, "train", "tabular", "--data", tmp_path / "people.csv", "--id-column", "id",
                         "--columns", "age", "score", "--out", tmp_path / "r", *FAST)
    assert code == 0 and vaekit.load(tmp_path / "r").model.config.n_features == 2
    # a run reading new rows names the bad cell, not options of training
    (tmp_path / "new.csv").write_text("id,age,score\nQ1,old,0.5\nQ2,young,0.1\n")
    code, _, err = run_cli(capsys, "anomalies", tmp_path / "r", "--data", tmp_path / "new.csv")
    assert code == 2 and "line 2, column 'age' holds 'old', not a number" in err and "to train on" not in err
    (tmp_path / "odd.csv").write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(5)) + "6,none?\n")
    code, _, err = run_cli(capsys, "train", "tabular", "--data", tmp_path / "odd.csv", "--out", tmp_path / "r2", *FAST)
    assert code == 2 and "line 7, column 'b' holds 'none?', not a number" in err


def test_run_refuses_rows_that_do_not_fit(tmp_path, capsys):
    path, _ = _table(tmp_path)
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--out", out, *FAST)[0] == 0
    run = vaekit.load(out)
    with pytest.raises(VaekitError, match="rows of 3 features"):
        run.encode(np.ones((2, 5)))
    with pytest.raises(VaekitError, match="infinity"):
        run.score(np.array([[1.0, np.inf, 2.0]]))
    with pytest.raises(VaekitError, match="row 1 has no value"):
        run.score(np.array([[1.0, np.nan, 2.0], [np.nan] * 3]))
    (out / "standardize.json").write_text(json.dumps({"columns": ["a"], "mean": [0.0], "std": [1.0]}))
    with pytest.raises(VaekitError, match="do not belong together"):
        vaekit.load(out)


def test_evaluate_a_tabular_run(tmp_path, capsys):
    path, _ = _table(tmp_path)
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--out", out, *FAST)[0] == 0
    code, stdout, _ = run_cli(capsys, "evaluate", out, "--data", path, "--svi-steps", "3")  # k: the default
    assert code == 0 and "iw_nll_raw_units" in stdout
    result = json.loads((out / "evaluation.json").read_text())
    m = {name: entry["value"] for name, entry in result["metrics"].items()}
    assert result["kind"] == "tabular" and result["settings"]["examples"] == 120 and result["settings"]["k"] == 1000
    std = np.array(json.loads((out / "standardize.json").read_text())["std"])
    assert m["iw_nll_raw_units"] == pytest.approx(m["iw_nll"] + np.log(std).sum(), rel=1e-5)
    assert 0 <= m["knn_accuracy"] <= 1 and "amortisation_gap" in m and "bits_per_dim" not in m
    code, _, err = run_cli(capsys, "evaluate", out, "--data", path, "--data-dir", tmp_path, "--out", tmp_path / "ev")
    assert code == 2 and "--data-dir" in err and not (tmp_path / "ev").exists()  # refused before anything is written


def _shop_table(tmp_path, n=300):
    """Rows where the category matters: price depends on the product type; city is independent."""
    rng = np.random.default_rng(2)
    kinds = rng.choice(["book", "lamp", "chair"], n, p=[0.5, 0.3, 0.2])
    price = np.select([kinds == "book", kinds == "lamp"], [10.0, 40.0], 120.0) + rng.normal(0, 2, n)
    cities = rng.choice(["Paris", "Lyon"], n)
    lines = ["order,kind,price,city"] + [f"A{i},{k},{v:.2f},{c}"
                                         for i, (k, v, c) in enumerate(zip(kinds, price, cities))]
    (tmp_path / "shop.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "shop.csv", kinds


def test_categorical_columns_train_sample_and_score(tmp_path, capsys):
    """--categorical: words as categories, one-hot under a softmax each. The run keeps the categories; samples
    come back as names at about the data's frequencies; a row with a category the file never had, or a
    price that does not go with its kind, scores as unusual; a resume keeps the codes' meaning."""
    path, kinds = _shop_table(tmp_path)
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "tabular", "--data", path, "--id-column", "order", "--categorical",
                                "kind", "city", "--epochs", "60", "--no-progress", "--out", out)
    assert code == 0, err
    assert "1 standardised and 2 categorical features (8 model inputs)" in stdout
    saved = json.loads((out / "standardize.json").read_text())
    assert saved["columns"] == ["kind", "price", "city"]
    assert saved["categories"] == [["book", "chair", "lamp"], None, ["Lyon", "Paris"]]
    assert json.loads((out / "config.json").read_text())["model"]["config"]["categories"] == [4, 3]
    assert run_cli(capsys, "sample", out, "-n", "3000", "--out", tmp_path / "s.csv")[0] == 0
    rows = [line.split(",") for line in (tmp_path / "s.csv").read_text().splitlines()]
    assert rows[0] == ["kind", "price", "city"] and {r[0] for r in rows[1:]} <= {"book", "chair", "lamp"}
    share = {k: np.mean([r[0] == k for r in rows[1:]]) for k in ("book", "lamp", "chair")}
    assert all(abs(share[k] - np.mean(kinds == k)) < 0.1 for k in share), share
    books = [float(r[1]) for r in rows[1:] if r[0] == "book"]
    assert 0 < np.median(books) < 30  # the price follows its kind in the samples too
    # typical rows, a book at a chair's price, and a kind the file never had
    (tmp_path / "new.csv").write_text("order,kind,price,city\nN1,book,10.5,Paris\nN2,lamp,39,Lyon\n"
                                      "N3,book,120,Paris\nN4,sofa,40,Lyon\n")
    assert run_cli(capsys, "anomalies", out, "--data", tmp_path / "new.csv", "--out", tmp_path / "a")[0] == 0
    scores = np.loadtxt(tmp_path / "a" / "scores.csv", delimiter=",", skiprows=1, usecols=1)
    assert max(scores[2], scores[3]) < min(scores[0], scores[1])
    run = vaekit.load(out)
    assert run.encode(np.array([[0.0, 10.0, 1.0]])).shape == (1, 2)  # Python rows: categories as their codes
    from vaekit.explore.session import Explorer  # the explorer shows the categories by name

    explorer = Explorer(run, run.modality.read_inputs(run, str(tmp_path / "new.csv")), echo=lambda *a: None)
    shown = explorer.example(3)
    assert shown["input"]["row"][0] == "(other)" and shown["input"]["row"][1] == 40  # sofa: not a category it knows
    assert explorer.example(0)["input"]["row"] == ["book", 10.5, "Paris"]
    assert explorer.decode(np.zeros((1, 2), np.float32))["output"]["row"][0] in ("book", "chair", "lamp")
    code, _, err = run_cli(capsys, "train", "tabular", "--out", out, "--resume", "--epochs", "61", "--no-progress")
    assert code == 0, err
    assert json.loads((out / "standardize.json").read_text())["categories"] == saved["categories"]


@pytest.mark.parametrize("content,args,match", [
    ("k,v\n,1\n?,2\nNA,3\n", ["--categorical", "k"], "column 'k' has no values: every cell is missing"),
    ("k,v\na,1\nb,2\na,3\n", ["--categorical", "k", "--label", "k"], "a column can be one or the other"),
    ("k,v\na,1\nb,2\na,3\n", ["--categorical", "nope"], "has no column 'nope'"),
])
def test_categorical_columns_refused_cleanly(tmp_path, capsys, content, args, match):
    (tmp_path / "t.csv").write_text(content)
    code, _, err = run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", *args, "--out", tmp_path / "r",
                           *FAST)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_small_table_trains_for_at_least_min_steps(tmp_path, capsys):
    """Tables default to 50 epochs and at least 2,000 optimiser steps (wine's 50 epochs were 150 steps, and
    more filled held-out cells better on every selection table); a typed --epochs alone means that many."""
    path, _ = _table(tmp_path)  # 96 training rows: one step an epoch at batch 96
    code, _, err = run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--batch-size", "96",
                           "--min-steps", "60", "--no-progress", "--out", tmp_path / "a")
    assert code == 0, err
    assert len((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()) == 60  # not the 50 epochs
    # hundreds of epochs print about a hundred lines (the first, the last, every k-th); metrics.jsonl has all
    code, stdout, err = run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--batch-size", "96",
                                "--min-steps", "250", "--no-progress", "--out", tmp_path / "c")
    lines = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert code == 0 and 80 < len(lines) <= 101 and lines[0].startswith("epoch 1:") and lines[-1].startswith(
        "epoch 250:")
    assert len((tmp_path / "c" / "metrics.jsonl").read_text().splitlines()) == 250
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["min_steps"] == 60
    code, stdout, _ = run_cli(capsys, "info", tmp_path / "a")
    assert code == 0 and "complete, 60 of 60 epochs, at least 60 steps" in stdout  # not "60 of 50 epochs"
    assert run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--epochs", "3", "--no-progress",
                   "--out", tmp_path / "b")[0] == 0
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 3
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["min_steps"] == 0
    x = np.random.default_rng(0).normal(size=(120, 3))
    # the estimator: epochs None (the default) follows the kind's rule, a number means that many epochs
    assert len(vaekit.VAE(batch_size=96, train_options={"min_steps": 55}).fit(x).history_) == 55
    assert len(vaekit.VAE(epochs=4, batch_size=96).fit(x).history_) == 4


def test_the_latent_size_is_half_the_columns_unless_given(tmp_path, capsys):
    """A table's code has half as many dimensions as it has columns (at least 2; chosen on imputation of held-out
    cells, bench/RESULTS.md): a typed --latent-dim or latent_dim= wins, and a column left out as constant or a
    label does not count."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 10))
    lines = [",".join(f"c{j}" for j in range(10)) + ",kind"] + [",".join(f"{v:.4f}" for v in row) + ",a" for row in x]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    for extra, latent in (([], 5), (["--latent-dim", "3"], 3), (["--columns", "c0", "c1", "c2"], 2)):
        out = tmp_path / f"r{latent}"
        code, _, err = run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--label", "kind", *extra,
                               *FAST, "--out", out)
        assert code == 0, err
        assert vaekit.load(out).model.latent_dim == latent
    assert vaekit.VAE(epochs=1).fit(x).transform(x[:2]).shape == (2, 5)
    assert vaekit.VAE(epochs=1, latent_dim=4).fit(x).transform(x[:2]).shape == (2, 4)

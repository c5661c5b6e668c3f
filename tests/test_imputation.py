"""Tables with missing cells: trained on as they are, scored, and filled in (`vaekit impute`, Run.impute,
VAE.impute) by the conditional mean given each row's observed cells (vaekit.imputation)."""
import csv

import numpy as np
import pytest
import torch

import vaekit
from vaekit.errors import VaekitError
from vaekit.imputation import conditional_mean
from vaekit.models import build_model

from .test_cli import run_cli


def _factor_table(n=600, seed=0):
    """Six columns driven by one hidden factor (each column a * t + small noise, in its own units): a cell is
    predictable from the row's other cells, and not from its column's mean."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 1))
    x = t * [1.0, -2.0, 0.5, 3.0, 1.5, -1.0] + 0.15 * rng.normal(size=(n, 6)) * [1.0, 2.0, 0.5, 3.0, 1.5, 1.0]
    return x * [1, 10, 1, 100, 1, 1] + [0, 50, 3, -200, 7, 0]


def _gaps(x, rate=0.2, seed=1):
    rng = np.random.default_rng(seed)
    mask = rng.random(x.shape) < rate
    mask[mask.all(1), 0] = False  # every row keeps a cell
    return np.where(mask, np.nan, x), mask


def _rmse(filled, x, mask):
    return float(np.sqrt((((filled - x) / x.std(0))[mask] ** 2).mean()))


def test_a_table_with_gaps_trains_scores_and_is_filled_in(tmp_path, capsys):
    """The command line end to end: training says how many cells are missing, anomaly scores are finite, and
    `vaekit impute` writes the user's table back with only its gaps filled: the label, the categories and every
    observed cell exactly as they were, each gap much nearer the truth than the column's mean."""
    x = _factor_table()
    x_gap, mask = _gaps(x)
    colours = np.where(x[:, 0] > 0, "red", "blue").astype(object)  # a category the factor decides
    colour_gap = np.random.default_rng(2).random(len(x)) < 0.2
    colours[colour_gap] = ""
    lines = ["a,b,c,d,e,f,colour,kind"]
    for i, row in enumerate(x_gap):
        lines.append(",".join("" if np.isnan(v) else f"{v:.4f}" for v in row) + f",{colours[i]},{'pq'[i % 2]}")
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "tabular", "--data", path, "--label", "kind", "--categorical",
                                "colour", "--latent-dim", "2", "--epochs", "60", "--no-progress", "--out", out)
    missing = int(mask.sum() + colour_gap.sum())
    assert code == 0, err
    assert f"{missing} cell(s) missing ({100 * missing / x.size / 7 * 6:.1f} %), left out of the likelihood" in stdout
    code, stdout, err = run_cli(capsys, "anomalies", out, "--data", path)
    assert code == 0, err
    scores = np.array([float(r["score"]) for r in csv.DictReader(open(out / "anomalies" / "scores.csv"))])
    assert len(scores) == len(x) and np.isfinite(scores).all()

    code, stdout, err = run_cli(capsys, "impute", out, "--data", path)
    assert code == 0, err
    assert f"filled {missing} missing cell(s) in {int((mask.any(1) | colour_gap).sum())} of 600 rows" in stdout
    rows = list(csv.reader(open(out / "imputed.csv")))
    given = list(csv.reader(open(path)))
    assert rows[0] == given[0] and len(rows) == len(given)
    for new, old in zip(rows[1:], given[1:]):
        assert all(n == o for n, o in zip(new, old) if o != "")  # observed cells, the label: untouched
        assert "" not in new
    filled = np.array([[float(v) for v in r[:6]] for r in rows[1:]])
    assert _rmse(filled, x, mask) < 0.5 * _rmse(np.where(mask, np.nanmean(x_gap, 0), x), x, mask)
    truth = np.where(x[:, 0] > 0, "red", "blue")
    guessed = np.array([r[6] for r in rows[1:]])
    assert (guessed[colour_gap] == truth[colour_gap]).mean() > 0.85  # the category from the other cells
    # never over a user's file: a second impute without --overwrite refuses
    code, _, err = run_cli(capsys, "impute", out, "--data", path, "--out", path)
    assert code == 2 and "exists" in err and path.read_text().startswith("a,b,c,d,e,f,colour,kind\n")


def test_importance_weights_improve_on_the_posterior_mean_alone():
    """The conditional mean from k importance samples (MIWAE) beats decoding the encoder's mean of the zero-filled
    row, which ignores that the encoder saw zeros where cells are missing; and observed cells come back exactly."""
    x = _factor_table(seed=3)
    x_gap, mask = _gaps(x, rate=0.4, seed=4)
    vae = vaekit.VAE(latent_dim=2, epochs=60, batch_size=64).fit(x_gap)
    run = vae.run_
    filled = run.impute(x_gap, k=200)
    assert np.array_equal(filled[~mask], x[~mask])
    decoded = run.reconstruct(x_gap)
    one_draw = np.where(mask, decoded, x_gap)
    assert _rmse(filled, x, mask) < _rmse(one_draw, x, mask)
    assert np.array_equal(run.impute(x_gap, k=20, seed=5), run.impute(x_gap, k=20, seed=5))  # a seed, a table


def test_conditional_mean_keeps_observed_cells_and_fills_every_gap():
    torch.manual_seed(0)
    model = build_model("mlp", {"n_features": 5}, latent_dim=2).eval()
    x = torch.randn(7, 5)
    x[0, 1] = x[3, 4] = x[6, 0] = float("nan")
    out = conditional_mean(model, x, k=30, chunk=7)  # chunks that do not divide k
    assert torch.isfinite(out).all() and torch.equal(out[~torch.isnan(x)], x[~torch.isnan(x)])
    with pytest.raises(ValueError):
        conditional_mean(model, x, k=0)


def test_the_estimator_fits_scores_and_imputes_gaps():
    x = _factor_table(n=300)
    x_gap, mask = _gaps(x)
    vae = vaekit.VAE(latent_dim=2, epochs=30, batch_size=64).fit(x_gap)
    assert vae.__sklearn_tags__().input_tags.allow_nan
    assert np.isfinite(vae.score_samples(x_gap)).all() and np.isfinite(vae.transform(x_gap)).all()
    filled = vae.impute(x_gap)
    assert not np.isnan(filled).any() and np.array_equal(filled[~mask], x[~mask])
    with pytest.raises(ValueError, match="infinity"):  # scikit-learn's message, as for any estimator
        vae.impute(np.where(mask, np.inf, x))


def test_images_have_no_gaps_to_fill():
    with pytest.raises(VaekitError, match="imputation is for tables"):
        vaekit.modalities.get("image").impute(None, np.zeros((1, 1, 8, 8)), 10)


def test_a_missing_cell_counts_as_typical_in_the_residual_scores():
    """A gap adds its feature's training mean to the standardised residual (1 per missing cell), and the row's
    mean observed residual to the reconstruction error: a row is neither favoured nor flagged for its gaps."""
    from vaekit.anomaly import Reference, error_of

    reference = Reference(torch.randn(40, 2), torch.rand(40), torch.tensor([1.0, 4.0, 0.5]))
    squared = torch.tensor([[2.0, 4.0, 1.0], [2.0, float("nan"), 1.0]])
    got = reference.standardised(squared)
    assert got[0] == pytest.approx(2.0 + 1.0 + 2.0) and got[1] == pytest.approx(2.0 + 1.0 + 2.0)
    x = torch.tensor([[1.0, float("nan"), 3.0]])
    assert error_of(x, torch.zeros(1, 3)).item() == pytest.approx((1 + 9) / 2 * 3)


def test_every_verb_reads_a_table_with_gaps(tmp_path, capsys):
    """evaluate (its trustworthiness probe), embed, reconstruct and the explorer take rows with missing cells;
    the explorer shows a gap as "(missing)", a categorical one too (not as "any other" category)."""
    from vaekit.explore.session import Explorer

    x_gap, _ = _gaps(_factor_table(n=120), rate=0.3)
    kinds = np.array(["x", "y", "z"] * 40, dtype=object)
    kinds[0] = "NA"
    lines = ["a,b,c,d,e,f,kind"] + [",".join("" if np.isnan(v) else f"{v:.4f}" for v in row) + f",{k}"
                                     for row, k in zip(x_gap, kinds)]
    path = tmp_path / "g.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "tabular", "--data", path, "--categorical", "kind", "--epochs", "3",
                   "--no-progress", "--out", out)[0] == 0
    for verb in (["evaluate", out, "--data", path, "--k", "5", "--svi-steps", "2"], ["embed", out, "--data", path],
                 ["reconstruct", out, "--data", path]):
        code, _, err = run_cli(capsys, *verb)
        assert code == 0, (verb[0], err)
    import json

    settings = json.loads((out / "evaluation.json").read_text())["settings"]
    assert settings["missing_cells"] == int(np.isnan(x_gap).sum()) + 1
    run = vaekit.load(out)
    explorer = Explorer(run, run.modality.read_inputs(run, str(path)), echo=lambda *a: None)
    shown = explorer.example(0)["input"]["row"]
    assert shown[6] == "(missing)" and shown.count("(missing)") == 1 + int(np.isnan(x_gap[0]).sum())
    json.dumps(explorer.example(0), allow_nan=False)  # what the page is sent: no NaN in it


def test_impute_keeps_a_file_without_a_header_and_its_delimiter(tmp_path, capsys):
    x_gap, mask = _gaps(_factor_table(n=100), rate=0.2)
    text = "\n".join(";".join("" if np.isnan(v) else f"{v:.3f}" for v in row) for row in x_gap) + "\n"
    (tmp_path / "t.csv").write_text("a;b;c;d;e;f\n" + text)
    (tmp_path / "bare.csv").write_text(text)
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--delimiter", ";", "--epochs", "2",
                   "--no-progress", "--out", out)[0] == 0
    code, _, err = run_cli(capsys, "impute", out, "--data", tmp_path / "bare.csv", "--out", tmp_path / "filled.csv")
    assert code == 0, err
    lines = (tmp_path / "filled.csv").read_text().splitlines()
    assert len(lines) == 100 and all(len(line.split(";")) == 6 and ";;" not in line for line in lines)
    kept = [[c for c, m in zip(line.split(";"), row) if not m] for line, row in zip(lines, mask)]
    assert kept == [[c for c, m in zip(line.split(";"), row) if not m] for line, row in zip(text.splitlines(), mask)]


def test_multiple_imputation_draws_spread_as_far_as_the_fills_are_off(tmp_path, capsys):
    """draws=N gives N completed tables: observed cells the same in all, each gap drawn from p(x_mis | x_obs).
    The draws' mean lands where the single fill does, and their spread matches how far the fills are from the
    truth (calibrated within a factor of 2): the uncertainty a single fill hides, for Rubin's rules."""
    x = _factor_table(n=400, seed=5)
    x_gap, mask = _gaps(x, rate=0.3, seed=6)
    # the default training (at least 2,000 steps): the decoder's noise scale needs them to settle (after 400
    # steps it was still 0.65 where the data's is 0.18, and the draws spread three times too far)
    vae = vaekit.VAE(latent_dim=2).fit(x_gap)
    draws = vae.impute(x_gap, draws=40)
    assert len(draws) == 40 and all(np.array_equal(d[~mask], x[~mask]) for d in draws)
    draws = np.stack(draws)  # (40, N, F)
    single = vae.impute(x_gap)
    sd = x.std(0)
    off = np.sqrt((((single - x) / sd)[mask] ** 2).mean())
    spread = np.sqrt(((draws.std(0) / sd)[mask] ** 2).mean())
    assert 0.5 < spread / off < 2, (spread, off)
    assert _rmse(draws.mean(0), x, mask) < 1.2 * _rmse(single, x, mask)
    (tmp_path / "t.csv").write_text("\n".join(",".join("" if np.isnan(v) else f"{v:.4f}" for v in r)
                                              for r in x_gap[:50]) + "\n")  # no header: as fit's array, by position
    vae.save(tmp_path / "run")
    code, stdout, err = run_cli(capsys, "impute", tmp_path / "run", "--data", tmp_path / "t.csv", "--draws", "3")
    assert code == 0 and ", 3 draws; wrote" in stdout, err
    rows = list(csv.reader(open(tmp_path / "run" / "imputed.csv")))
    assert len(rows) == 150 and [r[0] for r in rows] == ["1"] * 50 + ["2"] * 50 + ["3"] * 50  # no header added
    gapped = int(np.argmax(mask[:50].any(1)))
    assert rows[gapped][1:] != rows[50 + gapped][1:]  # a gap is drawn anew in each table


def test_a_file_without_a_header_finds_the_runs_categories_by_position(tmp_path, capsys):
    """A run trained on a file with a header reads a headerless file of the same columns by position, its
    categorical column included (its categories were looked up by the header's name, which such a file lacks,
    and the column was then read as numbers)."""
    rows = [f"{i % 7}.5,{'abc'[i % 3]},{i % 5}" for i in range(60)]
    (tmp_path / "h.csv").write_text("x,kind,y\n" + "\n".join(rows) + "\n")
    (tmp_path / "bare.csv").write_text("\n".join(rows[:10]) + "\n2.5,,1\n")
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "h.csv", "--categorical", "kind", "--epochs",
                   "2", "--no-progress", "--out", out)[0] == 0
    code, stdout, err = run_cli(capsys, "impute", out, "--data", tmp_path / "bare.csv")
    assert code == 0, err
    lines = (out / "imputed.csv").read_text().splitlines()
    assert lines[:10] == rows[:10] and lines[10].split(",")[1] in ("a", "b", "c")

"""`vaekit anomalies` and `vaekit embed` on image, text and tabular runs, through the CLI as a user
runs them, plus the scores and thresholds underneath (vaekit/anomaly.py, vaekit/embedding.py)."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.anomaly import log_likelihood, threshold_for
from vaekit.cli import main
from vaekit.errors import VaekitError
from vaekit.models import build_model

from .test_cli import run_cli
from .test_text import SENTENCES, SMALL


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "image", "--out", str(out), "--model", "seed", "--epochs", "2", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cancer"
    assert main(["train", "tabular", "--data", "breast-cancer", "--latent-dim", "3", "--epochs", "20",
                 "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    (folder / "s.txt").write_text("\n".join(SENTENCES) + "\n")
    out = folder / "run"
    assert main(["train", "text", "--data", str(folder / "s.txt"), "--out", str(out), *SMALL]) == 0
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_elbo_score_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = build_model("mlp", n_features=5).eval()
    x = torch.randn(40, 5)
    whole = log_likelihood(model, x, "elbo", k=4)
    assert np.allclose(whole, log_likelihood(model, x, "elbo", k=4))
    assert np.allclose(whole[10:20], log_likelihood(model, x[10:20], "elbo", k=4), rtol=1e-5)
    assert np.allclose(whole, log_likelihood(model, x, "elbo", k=4, max_rows=7), rtol=1e-5)
    iw = log_likelihood(model, x, "iw", k=200)
    assert iw.mean() > whole.mean()  # the IW bound is tighter than the ELBO (Burda et al. 2016)
    with pytest.raises(VaekitError, match="score must be one of"):
        log_likelihood(model, x, "bogus")


def test_threshold_is_the_contamination_quantile():
    scores = np.arange(100.0)
    assert threshold_for(scores, 0.1) == pytest.approx(9.9)
    assert np.mean(scores < threshold_for(scores, 0.25)) == 0.25
    with pytest.raises(VaekitError, match="contamination"):
        threshold_for(scores, 1.5)


def test_image_anomalies(image_run, capsys, tmp_path):
    out = tmp_path / "report"
    code, stdout, _ = run_cli(capsys, "anomalies", image_run, "--data", "digits", "--contamination", "0.05",
                              "--out", out)
    assert code == 0 and "flagged" in stdout
    rows = _rows(out / "scores.csv")
    assert len(rows) == 1797 and set(rows[0]) == {"index", "score", "flag", "label"}
    flagged = sum(r["flag"] == "-1" for r in rows)
    assert 0.01 * 1797 < flagged < 0.2 * 1797  # about 5 % of typical data
    assert Image.open(out / "most_anomalous.png").size[0] > 100 and (out / "histogram.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    default = "reconstruction+standardised+knn"  # images' default
    assert summary["method"] == default and f"score {default}" in stdout
    scores = np.array([float(r["score"]) for r in rows])
    assert summary["most_anomalous"][0] == int(np.argmin(scores))
    # a fixed threshold flags exactly the scores below it
    code, _, _ = run_cli(capsys, "anomalies", image_run, "--data", "digits", "--threshold", str(np.median(scores)),
                         "--out", tmp_path / "fixed")
    assert code == 0 and sum(r["flag"] == "-1" for r in _rows(tmp_path / "fixed" / "scores.csv")) in (898, 899)
    # noise images score below real digits
    np.save(tmp_path / "noise.npy", np.random.default_rng(0).integers(0, 255, (20, 8, 8), dtype=np.uint8))
    run = vaekit.load(image_run)
    from sklearn.datasets import load_digits

    digits = np.round(load_digits().images[:20] * 255 / 16).astype(np.uint8)
    assert run.score(np.load(tmp_path / "noise.npy")).mean() < run.score(digits).mean()


def test_text_anomalies_print_the_most_anomalous_sentences(text_run, capsys, tmp_path):
    # the same words as a training sentence, scrambled: same length, so no length effect on the score
    (tmp_path / "new.txt").write_text("the cat sat on the mat\nmat the on sat cat the\na dog ran in the park\n")
    code, stdout, _ = run_cli(capsys, "anomalies", text_run, "--data", tmp_path / "new.txt", "--score", "iw",
                              "--k", "20", "-n", "2", "--out", tmp_path / "r")
    assert code == 0
    score = {r["text"]: float(r["score"]) for r in _rows(tmp_path / "r" / "scores.csv")}
    assert list(score) == ["the cat sat on the mat", "mat the on sat cat the", "a dog ran in the park"]
    assert score["mat the on sat cat the"] < score["the cat sat on the mat"]
    lowest = min(score, key=score.get)  # the most anomalous is printed and written first
    assert lowest in stdout.splitlines()[0]
    assert lowest in (tmp_path / "r" / "most_anomalous.txt").read_text().splitlines()[1]
    (tmp_path / "odd.txt").write_text("the zorblax sat on the mat\n")
    code, _, err = run_cli(capsys, "anomalies", text_run, "--data", tmp_path / "odd.txt", "--out", tmp_path / "o")
    assert code == 0 and "1 of 6 words are not in the run's vocabulary" in err


def test_text_scores_per_token_take_the_length_out(text_run, image_run, capsys, tmp_path):
    """elbo-per-token is the ELBO over the sentence's tokens (<eos> counted, as perplexity counts), so a
    long ordinary sentence is not anomalous for its length alone; it is refused for other kinds."""
    sentences = ["the cat sat on the mat", "a dog ran in the park and the cat sat on the mat by the dog"]
    (tmp_path / "s.txt").write_text("\n".join(sentences) + "\n")
    scores = {}
    for score in ("elbo", "elbo-per-token"):
        code, _, _ = run_cli(capsys, "anomalies", text_run, "--data", tmp_path / "s.txt", "--score", score,
                             "--out", tmp_path / score)
        assert code == 0
        scores[score] = [float(r["score"]) for r in _rows(tmp_path / score / "scores.csv")]
    import vaekit

    read = vaekit.load(text_run).model.config.max_len  # a longer sentence is read up to here, as in training
    tokens = [min(len(s.split()) + 1, read) for s in sentences]
    assert scores["elbo-per-token"] == pytest.approx([e / t for e, t in zip(scores["elbo"], tokens)], abs=1e-3)
    code, _, err = run_cli(capsys, "anomalies", image_run, "--data", "digits", "--score", "elbo-per-token",
                           "--out", tmp_path / "i")
    assert code == 2 and "for text runs" in err
    # the text default, chosen by bench/RESULTS.md's rule (held-out against shuffled / word-replaced sentences)
    assert run_cli(capsys, "anomalies", text_run, "--data", tmp_path / "s.txt", "--out", tmp_path / "d")[0] == 0
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["method"] == "elbo-per-token"


def test_tabular_anomalies_and_embedding(tabular_run, capsys, tmp_path):
    code, _, _ = run_cli(capsys, "anomalies", tabular_run, "--data", "breast-cancer")
    assert code == 0
    rows = _rows(tabular_run / "anomalies" / "scores.csv")
    assert len(rows) == 569 and rows[0]["label"] in ("malignant", "benign")
    assert run_cli(capsys, "anomalies", tabular_run, "--data", "breast-cancer")[0] == 0
    assert (tabular_run / "anomalies-2" / "scores.csv").exists()  # a repeated command never overwrites
    code, stdout, _ = run_cli(capsys, "embed", tabular_run, "--data", "breast-cancer", "--out", tmp_path / "z.csv")
    assert code == 0 and "PCA of 3-D latent means" in stdout
    embedded = _rows(tmp_path / "z.csv")
    assert embedded[0].keys() == {"z0", "z1", "z2", "label"}
    assert [r["label"] for r in embedded] == [r["label"] for r in rows]  # class names, as scores.csv has them
    assert (tmp_path / "z_pca.png").exists()


def test_a_projected_view_names_its_axes_as_what_they_are(tabular_run, capsys, tmp_path, monkeypatch):
    """A PCA of a 3-D code plots principal components, not z[0] and z[1] (found reading z_pca.png)."""
    from vaekit import visual

    seen, draw = {}, visual.latent_scatter
    monkeypatch.setattr(visual, "latent_scatter", lambda *a, **k: (seen.update(k), draw(*a, **k)))
    assert run_cli(capsys, "embed", tabular_run, "--data", "breast-cancer", "--out", tmp_path / "z.npy")[0] == 0
    assert seen["title"] == "PCA of 3-D latent means" and seen["axes"] == ("PC 1", "PC 2")


def test_embed_and_sample_never_overwrite_the_files_they_write_beside_out(tabular_run, image_run, capsys, tmp_path):
    for name in ("q_pca.png", "r_labels.npy", "s.npy"):
        (tmp_path / name).write_text("precious")
    for args, victim in ((("embed", tabular_run, "--data", "breast-cancer", "--out", tmp_path / "q.csv"), "q_pca.png"),
                         (("embed", tabular_run, "--data", "breast-cancer", "--out", tmp_path / "r.npy"),
                          "r_labels.npy"),
                         (("sample", image_run, "-n", "2", "--out", tmp_path / "s.png"), "s.npy")):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and f"{victim} exists; pass --overwrite" in err
        assert (tmp_path / victim).read_text() == "precious"
        assert not (tmp_path / args[-1]).exists()  # nothing written, not even the file asked for
    code, _, _ = run_cli(capsys, "embed", tabular_run, "--data", "breast-cancer", "--out", tmp_path / "q.csv",
                         "--overwrite")
    assert code == 0 and (tmp_path / "q_pca.png").read_bytes().startswith(b"\x89PNG")


def test_embed_text_and_the_umap_view(text_run, image_run, capsys, tmp_path):
    (tmp_path / "s.txt").write_text("\n".join(SENTENCES[:30]) + "\n")
    code, _, _ = run_cli(capsys, "embed", text_run, "--data", tmp_path / "s.txt", "--out", tmp_path / "t.csv")
    assert code == 0
    rows = _rows(tmp_path / "t.csv")
    assert len(rows) == 30 and rows[0]["text"] == SENTENCES[0] and "z7" in rows[0]
    assert (tmp_path / "t_pca.png").exists()
    # two sentences: their codes are written; the 2-D view of an 8-D space is skipped with a note, not an error
    (tmp_path / "two.txt").write_text("\n".join(SENTENCES[:2]) + "\n")
    code, stdout, _ = run_cli(capsys, "embed", text_run, "--data", tmp_path / "two.txt", "--out", tmp_path / "two.npy")
    assert code == 0 and np.load(tmp_path / "two.npy").shape == (2, 8) and "no 2-D view" in stdout
    assert not (tmp_path / "two_pca.png").exists()
    pytest.importorskip("umap")
    import warnings

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        code, stdout, _ = run_cli(capsys, "embed", text_run, "--data", tmp_path / "s.txt", "--view", "umap",
                                  "--out", tmp_path / "u.npy")
    assert code == 0 and np.load(tmp_path / "u.npy").shape == (30, 8) and (tmp_path / "u_umap.png").exists()
    assert not [w for w in said if "n_jobs" in str(w.message)]  # umap-learn's own complaint never reaches the user


# ---- bad input: one clear message, exit 2, nothing overwritten ----------------------------------------
def test_bad_input(image_run, tabular_run, text_run, capsys, tmp_path):
    def bad(*args, match):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err

    np.save(tmp_path / "big.npy", np.zeros((3, 28, 28), np.uint8))
    bad("anomalies", image_run, "--data", tmp_path / "big.npy", "--out", tmp_path / "a", match="(1, 8, 8)")
    (tmp_path / "nan.csv").write_text(",".join(f"c{i}" for i in range(30)) + "\n" + ",".join(["1"] * 29 + ["nan"]))
    bad("anomalies", tabular_run, "--data", tmp_path / "nan.csv", "--out", tmp_path / "b", match="lacks column")
    np.save(tmp_path / "narrow.npy", np.ones((4, 7)))
    bad("embed", tabular_run, "--data", tmp_path / "narrow.npy", "--out", tmp_path / "z.npy", match="takes 30")
    rows = np.ones((4, 30))
    rows[2, 5] = np.inf
    np.save(tmp_path / "inf.npy", rows)
    bad("anomalies", tabular_run, "--data", tmp_path / "inf.npy", "--out", tmp_path / "c", match="is inf (infinity)")
    (tmp_path / "empty.txt").write_text("")
    bad("anomalies", text_run, "--data", tmp_path / "empty.txt", "--out", tmp_path / "d", match="empty")
    (tmp_path / "empty.csv").write_text("")
    bad("embed", tabular_run, "--data", tmp_path / "empty.csv", "--out", tmp_path / "e.npy", match="empty")
    bad("anomalies", image_run, "--data", "digits", "--contamination", "0.1", "--threshold", "3", match="not both")
    bad("anomalies", image_run, "--data", "digits", "--contamination", "2", "--out", tmp_path / "f",
        match="contamination")
    code, _, err = run_cli(capsys, "anomalies", image_run, "--data", "digits", "--k", "0", "--out", tmp_path / "g")
    assert code == 2 and "argument --k: must be at least 1" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "scores.csv").write_text("precious")
    bad("anomalies", image_run, "--data", "digits", "--out", tmp_path / "mine", match="--overwrite")
    assert (tmp_path / "mine" / "scores.csv").read_text() == "precious"


def test_reconstruction_score(image_run, tabular_run, text_run, capsys, tmp_path):
    from sklearn.datasets import load_digits

    run = vaekit.load(image_run)
    digits = np.round(load_digits().images[:20] * 255 / 16).astype(np.uint8)
    scores = run.score(digits, method="reconstruction")
    # minus the squared distance to the decoded posterior mean after a Gaussian blur (sigma 1 pixel
    # per 28, so 8/28 on these 8x8 digits; radius 1; zero padding) of both, relative to the blurred
    # image's squared norm; computed here independently with scipy
    from scipy.ndimage import gaussian_filter

    x = torch.from_numpy(digits).float().unsqueeze(1) / 255.0
    with torch.no_grad():
        r = run.model.reconstruct(x).numpy()
    def smooth(a):
        return gaussian_filter(a[:, 0].astype(np.float64), sigma=(0, 8 / 28, 8 / 28), truncate=3.5, mode="constant")

    blurred = smooth(x.numpy())
    expected = -((smooth(r) - blurred) ** 2).reshape(len(x), -1).sum(1) / (blurred ** 2).reshape(len(x), -1).sum(1)
    assert np.allclose(scores, expected, rtol=1e-4) and (scores <= 0).all()
    # a blank image has nothing to reconstruct: it scores far below every digit instead of dividing by 0
    blank = run.score(np.zeros((1, 8, 8), np.uint8), method="reconstruction")
    assert np.isfinite(blank).all() and blank[0] < scores.min()
    # the CLI calibrates its threshold on the same score; tabular runs take it too; text runs refuse it
    code, stdout, _ = run_cli(capsys, "anomalies", tabular_run, "--data", "breast-cancer", "--score",
                              "reconstruction", "--out", tmp_path / "rec")
    assert code == 0 and "flagged" in stdout
    code, _, stderr = run_cli(capsys, "anomalies", text_run, "--data", str(text_run / "tokenizer.json"),
                              "--score", "reconstruction", "--out", tmp_path / "text")
    assert code == 2 and "image and tabular" in stderr


def test_knn_scores(image_run, text_run, capsys, tmp_path):
    """knn: minus the mean distance to the 5 nearest training codes; reconstruction+knn: minus the sum
    of the reconstruction error and that distance, each standardised over the training data (the
    distances leave-one-out). Both checked against a brute-force computation from the run's training
    split, which the CLI reads, keeps as reference.safetensors and reuses."""
    from sklearn.datasets import load_digits

    from vaekit.anomaly import NEIGHBOURS, REFERENCE
    from vaekit.modalities.image import ImageDataConfig, load_image_data

    digits = np.round(load_digits().images * 255 / 16).astype(np.uint8)
    code, stdout, _ = run_cli(capsys, "anomalies", image_run, "--data", "digits", "--score", "reconstruction+knn",
                              "--out", tmp_path / "both")
    assert code == 0 and "flagged" in stdout and (image_run / REFERENCE).exists()
    made = (image_run / REFERENCE).stat().st_mtime_ns
    run = vaekit.load(image_run)
    train, _, _ = load_image_data(ImageDataConfig(**json.loads((image_run / "config.json").read_text())["data"]))
    train_codes = run.encode(train.x.numpy())
    z = run.encode(digits[:40])
    dist = np.sqrt(((z[:, None] - train_codes[None]) ** 2).sum(-1))  # (40, N)
    knn = np.sort(dist, 1)[:, :NEIGHBOURS].mean(1)
    assert np.allclose(run.score(digits[:40], method="knn"), -knn, rtol=1e-4)
    own = np.sqrt(((train_codes[:, None] - train_codes[None]) ** 2).sum(-1))
    own = np.sort(own, 1)[:, 1:NEIGHBOURS + 1].mean(1)  # leave-one-out: without the code itself
    err, train_err = (-run.score(a, method="reconstruction") for a in (digits[:40], train.x.numpy()))
    expected = -((knn - own.mean()) / own.std() + (err - train_err.mean()) / train_err.std())
    assert np.allclose(run.score(digits[:40], method="reconstruction+knn"), expected, rtol=1e-3, atol=1e-3)
    assert (image_run / REFERENCE).stat().st_mtime_ns == made  # reused, not made again
    csv_scores = np.array([float(r["score"]) for r in _rows(tmp_path / "both" / "scores.csv")])
    assert np.allclose(csv_scores[:40], expected, rtol=1e-3, atol=1e-3)
    # text runs take knn (codes) but not the reconstruction error
    code, stdout, _ = run_cli(capsys, "anomalies", text_run, "--data", str(text_run.parent / "s.txt"), "--score",
                              "knn", "--out", tmp_path / "text")
    assert code == 0 and "flagged" in stdout
    code, _, stderr = run_cli(capsys, "anomalies", text_run, "--data", str(text_run.parent / "s.txt"), "--score",
                              "reconstruction+knn", "--out", tmp_path / "text2")
    assert code == 2 and "image and tabular" in stderr
    # weights trained further (as by vaekit resume): the stale reference is made again from them
    import shutil

    from safetensors.torch import load_file, save_file

    moved = tmp_path / "moved"
    shutil.copytree(image_run, moved)
    weights = {k: v + 0.05 for k, v in load_file(moved / "model.safetensors").items()}
    save_file(weights, moved / "model.safetensors")
    again = vaekit.load(moved)
    again.score(digits[:5], method="knn")
    assert np.allclose(load_file(moved / REFERENCE)["codes"].numpy(), again.encode(train.x.numpy()), atol=1e-5)
    # a reference file that does not fit the run is refused with one line, not a traceback
    (image_run / REFERENCE).write_bytes(b"not safetensors")
    code, _, stderr = run_cli(capsys, "anomalies", image_run, "--data", "digits", "--score", "knn",
                              "--out", tmp_path / "bad")
    assert code == 2 and REFERENCE in stderr and len(stderr.strip().splitlines()) == 1
    (image_run / REFERENCE).unlink()


def test_knn_estimator_detects_other_digits_and_round_trips(tmp_path):
    """One-class digits (bundled 8x8): trained on 3s, the knn scores rank the other digits lower, and
    save -> load gives the same scores and threshold (the reference set travels with the run)."""
    from sklearn.datasets import load_digits
    from sklearn.metrics import roc_auc_score

    d = load_digits()
    x, y = np.round(d.images * 255 / 16).astype(np.uint8), d.target
    vae = vaekit.VAE(kind="image", model="conv", latent_dim=8, epochs=15, score_method="reconstruction+knn",
                     random_state=0, train_options={"threads": 1}).fit(x[y == 3])
    scores = vae.score_samples(x)
    assert roc_auc_score(y != 3, -scores) > 0.85  # 95.4 when measured; chance is 0.5
    vae.save(tmp_path / "r")
    again = vaekit.VAE.load(tmp_path / "r")
    assert np.array_equal(again.score_samples(x), scores) and again.offset_ == vae.offset_


def test_knn_score_needs_the_codes_fit_makes():
    """A model fitted for another score has no training codes: switching to knn says to fit again;
    a score the kind cannot take is refused before any training."""
    from sklearn.datasets import load_breast_cancer

    from vaekit.estimator import EstimatorInputError

    x, y = load_breast_cancer(return_X_y=True)
    vae = vaekit.VAE(epochs=2, score_method="elbo", train_options={"threads": 1}).fit(x[y == 1])
    with pytest.raises(VaekitError, match="fit it again"):
        vae.set_params(score_method="knn").score_samples(x[:5])
    text = vaekit.VAE(kind="text", epochs=1, score_method="reconstruction+knn")
    with pytest.raises(EstimatorInputError, match="image and tabular"):
        text.fit(SENTENCES)
    assert not hasattr(text, "history_")  # refused before training


def test_blur_is_a_gaussian_filter():
    """anomaly.blur (radius 2 sigma, zero padding) against scipy's Gaussian filter, on 28x28 images
    where the reconstruction score blurs with sigma 1."""
    from scipy.ndimage import gaussian_filter

    from vaekit.anomaly import blur

    x = torch.rand(3, 2, 28, 28, dtype=torch.float64)
    expected = gaussian_filter(x.numpy(), sigma=(0, 0, 1, 1), truncate=2, mode="constant")
    assert np.allclose(blur(x, 1.0).numpy(), expected, atol=1e-12)
    assert not np.allclose(x.numpy(), expected, atol=1e-3)  # it does blur

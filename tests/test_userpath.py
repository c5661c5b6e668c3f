"""What a user meets after the tour (issue 27): runs that work from any folder, outputs stamped with the
weights they came from, honest figures, quiet when asked."""
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import main

FAST = ["--epochs", "1", "--no-progress"]


def run_cli(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def fake_mnist(folder: Path) -> Path:
    """A tiny MNIST look-alike (8x8 images) in folder/mnist, as a user's data folder holds it."""
    rng = np.random.default_rng(0)
    (folder / "mnist").mkdir(parents=True)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (60, 8, 8)),
              "train-labels-idx1-ubyte.gz": np.arange(60) % 3,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 8, 8)),
              "t10k-labels-idx1-ubyte.gz": np.arange(12) % 3}
    for name, array in arrays.items():
        (folder / "mnist" / name).write_bytes(idx_gz(array))
    return folder


def table(path: Path, n: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    path.write_text("a,b,c\n" + "".join(f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f}\n" for r in x))
    return path


# ---- 1. a run works from any folder -----------------------------------------------------------------
def test_a_run_records_absolute_paths_and_is_used_and_resumed_from_elsewhere(tmp_path, monkeypatch, capsys):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    fake_mnist(project / "data")
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    code, _, err = run_cli(capsys, "train", "image", "--data", "mnist", "--data-dir", "data", "--model", "seed",
                           "--out", "runs/m", *FAST)
    assert code == 0, err
    data = json.loads((project / "runs/m/config.json").read_text())["data"]
    assert data["data_dir"] == str(project / "data") and data["data"] == "mnist"  # a name stays a name
    monkeypatch.chdir(elsewhere)
    run = "../project/runs/m"
    assert run_cli(capsys, "reconstruct", run, "--data", "mnist:test", "--out", "r.png")[0] == 0
    code, _, err = run_cli(capsys, "resume", run, "--epochs", "2", "--no-progress")
    assert code == 0, err
    # The data moved: resume and train --resume take --data-dir and record it; $VAEKIT_DATA is honoured.
    (project / "data").rename(project / "moved")
    code, _, err = run_cli(capsys, "resume", run, "--epochs", "3", "--data-dir", "../project/moved", "--no-progress")
    assert code == 0, err
    assert json.loads((project / "runs/m/config.json").read_text())["data"]["data_dir"] == str(project / "moved")
    (project / "moved").rename(project / "again")
    code, _, err = run_cli(capsys, "train", "image", "--out", run, "--resume", "--epochs", "4",
                           "--data-dir", "../project/again", "--no-progress")
    assert code == 0, err
    assert json.loads((project / "runs/m/config.json").read_text())["data"]["data_dir"] == str(project / "again")
    (project / "again").rename(project / "env")
    monkeypatch.setenv("VAEKIT_DATA", str(project / "env"))
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    for verb in (["reconstruct", run, "--data", "mnist:test", "--out", "r2.png"],
                 ["interpolate", run, "--data", "mnist:test", "--index", "0", "1", "--out", "i.png"],
                 ["evaluate", run, "--data", "mnist:test", "--k", "2", "--no-probes", "--out", "ev"]):
        code, _, err = run_cli(capsys, *verb)
        assert code == 0, (verb, err)


def test_an_old_runs_relative_paths_are_resolved_from_another_folder(tmp_path, monkeypatch, capsys):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    table(project / "t.csv")
    monkeypatch.chdir(project)
    assert run_cli(capsys, "train", "tabular", "--data", "t.csv", "--out", "runs/t", *FAST)[0] == 0
    config_path = project / "runs/t/config.json"
    config = json.loads(config_path.read_text())
    assert config["data"]["data"] == str(project / "t.csv")
    config["data"]["data"] = "t.csv"  # as runs written before paths were recorded absolute hold it
    config_path.write_text(json.dumps(config))
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli(capsys, "resume", "../project/runs/t", "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert json.loads(config_path.read_text())["data"]["data"] == str(project / "t.csv")
    code, _, err = run_cli(capsys, "anomalies", "../project/runs/t", "--data", "../project/t.csv", "--out", "a")
    assert code == 0, err


def test_resume_refuses_settings_that_change_what_it_learns(tmp_path, capsys):
    import vaekit
    from vaekit.errors import VaekitError

    table(tmp_path / "t.csv")
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--out", tmp_path / "r", *FAST)[0] == 0
    with pytest.raises(VaekitError, match="cannot change lr"):
        vaekit.resume(tmp_path / "r", epochs=2, lr=0.5)
    code, _, err = run_cli(capsys, "resume", tmp_path / "r", "--column", "x")
    assert code == 2


# ---- 2 and 14. derived outputs are stamped with their weights; info says which are current ------------
def test_outputs_are_stamped_and_stale_ones_are_said_or_made_again(tmp_path, capsys):
    from vaekit import stamps

    table(tmp_path / "t.csv", n=80)
    run = tmp_path / "r"
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--latent-dim", "3", "--out", run,
                   *FAST)[0] == 0
    assert run_cli(capsys, "export", run, "--onnx")[0] == 0
    assert run_cli(capsys, "evaluate", run, "--data", tmp_path / "t.csv", "--k", "2", "--no-probes")[0] == 0
    # the tables' default score (standardised) compares with the training data: reference.safetensors
    assert run_cli(capsys, "anomalies", run, "--data", tmp_path / "t.csv")[0] == 0
    assert run_cli(capsys, "embed", run, "--data", tmp_path / "t.csv", "--view", "parametric",
                   "--out", tmp_path / "z.npy")[0] == 0
    first = stamps.of_run(run)
    assert first["epoch"] == 1
    for name in ("onnx/manifest.json", "evaluation.json", "anomalies/summary.json", "embedding_map/weights.json",
                 "heldout_scores.json"):
        assert json.loads((run / name).read_text())["weights"] == first, name
    code, out, _ = run_cli(capsys, "info", run)
    assert code == 0 and "stale" not in out and out.count("current") == 6 and "reference.safetensors" in out
    assert "kind:     tabular" in out and "1 of 1 epochs" in out

    with pytest.warns(UserWarning, match="no longer match") as said:
        assert run_cli(capsys, "resume", run, "--epochs", "2", "--no-progress")[0] == 0
    assert all(name in str(said[0].message) for name in ("onnx/", "evaluation.json", "embedding_map/", "anomalies/"))
    code, out, _ = run_cli(capsys, "info", run)
    assert "2 of 2 epochs" in out and out.count("stale: from other weights (epoch 1)") == 5
    assert out.count("made again when next needed") == 3  # embedding_map/, heldout_scores.json, reference.safetensors
    # compare warns that the newest evaluation is of other weights; the default ONNX folder, the map and the
    # held-out scores are made again.
    with pytest.warns(UserWarning, match=r"evaluated earlier weights \(epoch 1\)"):
        assert run_cli(capsys, "compare", run, run)[0] == 0
    assert run_cli(capsys, "export", run, "--onnx")[0] == 0
    code, out, _ = run_cli(capsys, "embed", run, "--data", tmp_path / "t.csv", "--view", "parametric",
                           "--out", tmp_path / "z2.npy")
    assert code == 0 and "fitted again" in out
    assert run_cli(capsys, "anomalies", run, "--data", tmp_path / "t.csv")[0] == 0
    now = stamps.of_run(run)
    assert now["epoch"] == 2 and now != first
    for name in ("onnx/manifest.json", "embedding_map/weights.json", "heldout_scores.json",
                 "anomalies-2/summary.json"):
        assert json.loads((run / name).read_text())["weights"] == now, name


def test_version(capsys):
    from vaekit import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"vaekit {__version__}"


# ---- 4 and 5. ID columns are refused as features; outputs name each example -------------------------
def id_table(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(1)
    rows = [f"{100 + i},{rng.normal():.4f},{rng.normal() + (i >= n // 2):.4f},{'ab'[i >= n // 2]}" for i in range(n)]
    path.write_text("id,f1,f2,kind\n" + "\n".join(rows) + "\n")
    return path


def test_an_id_column_is_refused_as_a_feature_and_passed_through_with_id_column(tmp_path, capsys):
    data = id_table(tmp_path / "t.csv")
    code, _, err = run_cli(capsys, "train", "tabular", "--data", data, "--label", "kind", "--out", tmp_path / "no",
                           *FAST)
    assert code == 2 and "'id' look like row IDs" in err and "--id-column id" in err
    assert not (tmp_path / "no").exists()
    run = tmp_path / "r"
    code, out, err = run_cli(capsys, "train", "tabular", "--data", data, "--label", "kind", "--id-column", "id",
                             "--out", run, *FAST)
    assert code == 0, err
    assert "of 2 standardised features" in out
    assert run_cli(capsys, "anomalies", run, "--data", data)[0] == 0
    rows = (run / "anomalies/scores.csv").read_text().splitlines()
    assert rows[0] == "index,score,flag,label,id" and rows[1].endswith(",a,100") and rows[-1].endswith(",b,159")
    assert run_cli(capsys, "embed", run, "--data", data, "--out", tmp_path / "z.csv")[0] == 0
    rows = (tmp_path / "z.csv").read_text().splitlines()
    assert rows[0] == "z0,z1,label,id" and rows[5].endswith(",a,104")
    # --columns names the features: an ID-like column the user names there is theirs to keep.
    code, _, err = run_cli(capsys, "train", "tabular", "--data", data, "--columns", "id", "f1", "--out",
                           tmp_path / "kept", *FAST)
    assert code == 0, err


def test_scores_and_codes_of_an_image_folder_name_each_file(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"p{i:02}.png")
    run = tmp_path / "r"
    assert run_cli(capsys, "train", "image", "--data", tmp_path / "imgs", "--model", "image-mlp", "--out", run,
                   *FAST)[0] == 0
    assert run_cli(capsys, "anomalies", run, "--data", tmp_path / "imgs", "--score", "elbo")[0] == 0
    rows = (run / "anomalies/scores.csv").read_text().splitlines()
    assert rows[0] == "index,score,flag,label,file" and rows[1].endswith(",a,a/p00.png")
    assert rows[-1].endswith(",b,b/p11.png")
    assert run_cli(capsys, "embed", run, "--data", tmp_path / "imgs", "--out", tmp_path / "z.csv")[0] == 0
    assert (tmp_path / "z.csv").read_text().splitlines()[0] == "z0,z1,label,file"


# ---- 8. the collapse monitor watches tabular runs too --------------------------------------------------
def test_a_collapsed_tabular_run_is_warned_about(tmp_path, capsys):
    table(tmp_path / "t.csv", n=60)  # independent noise: nothing for a code to carry, and beta pushes it to 0
    with pytest.warns(UserWarning, match="the latent code looks collapsed") as said:
        code, _, err = run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--beta", "4",
                               "--epochs", "260", "--no-progress", "--out", tmp_path / "r")  # 1 step an epoch
    assert code == 0, err
    # The advice names what a command-line user and a vaekit.VAE user each can pass, and both are taken.
    import ast
    import re

    import vaekit

    advice = next(str(w.message) for w in said if "collapsed" in str(w.message))
    flags = re.findall(r"--[a-z-]+", advice)
    options = ast.literal_eval(re.search(r"train_options=(\{[^}]*\})", advice).group(1))
    assert {"--kl-warmup-steps", "--free-bits"} <= set(flags)
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", *[f for f in flags for f in (f, "1")],
                   "--epochs", "1", "--no-progress", "--out", tmp_path / "r2")[0] == 0
    vaekit.VAE(kind="tabular", epochs=1, train_options=options).fit(np.random.default_rng(0).normal(size=(40, 3)))


# ---- 3. the histogram never draws a flagged score right of the threshold ------------------------------
def test_the_histogram_keeps_flagged_scores_left_of_the_threshold():
    from vaekit.anomaly import histogram_floor

    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 0.3, 1789), rng.normal(-3.72, 0.005, 8)])  # 8 just below the rest
    threshold = -3.703  # the numbers: 8 of 1797 flagged below -3.703
    flagged = scores[scores < threshold]
    assert len(flagged) == 8
    drawn = np.clip(flagged, histogram_floor(scores, threshold), None)
    assert (drawn < threshold).all()
    far = np.concatenate([scores, [-1e4]])  # a far outlier is still kept from squashing the plot
    assert histogram_floor(far, threshold) > -10


# ---- 6. sample never replaces the training's plots/samples.png -----------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small image run on the bundled 8x8 digits."""
    run = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "image", "--model", "image-mlp", "--limit", "300", "--out", str(run), *FAST]) == 0
    return run


def test_sample_keeps_the_training_samples_and_earlier_results(digits_run, capsys):
    run = digits_run
    training = (run / "plots/samples.png").read_bytes()
    code, out, _ = run_cli(capsys, "sample", run, "-n", "4")
    assert code == 0 and "samples-2.png" in out and (run / "plots/samples-2.npy").exists()
    assert run_cli(capsys, "sample", run, "-n", "4")[0] == 0
    assert (run / "plots/samples-3.png").exists() and (run / "plots/samples.png").read_bytes() == training


# ---- 7. refine says when it ends worse than its source -------------------------------------------------
def test_refine_says_when_it_ends_worse_than_its_source(tmp_path, capsys):
    table(tmp_path / "t.csv", n=80)
    run = tmp_path / "r"
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--out", run, "--epochs", "5",
                   "--no-progress")[0] == 0
    code, out, _ = run_cli(capsys, "refine", run, "--epochs", "1", "--lr", "3", "--no-progress")
    assert code == 0
    assert "did not improve on its source" in out and f"keep using {run}" in out


# ---- 9. help and messages say what the commands do -----------------------------------------------------
def test_help_and_messages_say_what_happens(digits_run, tmp_path, capsys, monkeypatch):
    from vaekit.cli import build_parser
    from vaekit.cli.options import config_from_args
    from vaekit.data.text import load_texts
    from vaekit.errors import VaekitError
    from vaekit.modalities.image import ImageDataConfig

    helps = {verb: " ".join(build_parser()._subparsers._group_actions[0].choices[verb].format_help().split())
             for verb in ("anomalies", "vary", "sample")}
    assert "folder for the report" in helps["anomalies"] and "output file" not in helps["anomalies"]
    assert "default: print only" in helps["vary"] and "text runs print" in helps["sample"]
    args = build_parser().parse_args(["train", "image", "--image-size", "16"])
    assert config_from_args(ImageDataConfig, args).image_size == (16, 16)
    # A named set of another shape is refused before anything is downloaded.
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VAEKIT_MIRROR", "http://127.0.0.1:9")
    code, _, err = run_cli(capsys, "reconstruct", digits_run, "--data", "mnist", "--out", tmp_path / "r.png")
    assert code == 2 and "takes images of shape (1, 8, 8)" in err and "(1, 28, 28)" in err
    assert not (tmp_path / "cache").exists()
    code, out, _ = run_cli(capsys, "embed", digits_run, "--data", "digits", "--view", "umap",
                           "--out", tmp_path / "z.npy")
    assert code == 0 and "--view umap does not apply" in out
    (tmp_path / "s.csv").write_text("id,text\n1,a sentence here\n")
    with pytest.raises(VaekitError, match="with --column"):
        load_texts(str(tmp_path / "s.csv"))


# ---- 10 and 11. the threshold says what it is a quantile of; held-out scores are cached ----------------
def test_contamination_on_a_small_heldout_split_is_warned_about_and_scores_are_cached(tmp_path, capsys):
    table(tmp_path / "t.csv", n=60)
    run = tmp_path / "r"
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--out", run, *FAST)[0] == 0
    with pytest.warns(UserWarning, match="quantile of the run's 12 held-out scores"):
        code, out, _ = run_cli(capsys, "anomalies", run, "--data", tmp_path / "t.csv", "--score", "elbo")
    assert code == 0 and "contamination 0.01 of 12 held-out scores" in out
    cache = json.loads((run / "heldout_scores.json").read_text())
    assert list(cache["scores"]) == ["elbo k=10"] and len(cache["scores"]["elbo k=10"]) == 12
    # The cache is what the next call uses: the data need not be read again.
    cache["scores"]["elbo k=10"] = [-1e9] * 11 + [1e9]
    (run / "heldout_scores.json").write_text(json.dumps(cache))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0.5 of 12 is six examples: nothing to warn about
        code, out, _ = run_cli(capsys, "anomalies", run, "--data", tmp_path / "t.csv", "--contamination", "0.5",
                               "--score", "elbo")
    assert code == 0 and out.startswith("0 of 60 flagged")


# ---- 12. VAE(verbose=False) is silent; the epoch lines go through logging ------------------------------
def test_estimator_verbose_false_is_silent_and_messages_go_through_logging(capsys, caplog):
    import logging

    import vaekit

    x = np.random.default_rng(0).normal(size=(60, 4))
    vaekit.VAE(epochs=2, verbose=False).fit(x)
    out, err = capsys.readouterr()
    assert "epoch" not in out + err
    logger = logging.getLogger("vaekit.train")
    propagate, logger.propagate = logger.propagate, True  # a CLI run in this process sent them to stdout only
    try:
        with caplog.at_level(logging.INFO, logger="vaekit"):
            vaekit.VAE(epochs=2, verbose=True).fit(x)
    finally:
        logger.propagate = propagate
    lines = [r.getMessage() for r in caplog.records if r.name == "vaekit.train"]
    assert len(lines) == 2 and lines[0].startswith("epoch 1: train -ELBO")


def test_epoch_lines_print_when_no_logging_is_configured():
    import subprocess
    import sys

    code = ("import numpy as np, vaekit; x = np.random.default_rng(0).normal(size=(40, 3)); "
            "vaekit.VAE(epochs=1, verbose=True).fit(x); print('quiet:'); vaekit.VAE(epochs=1).fit(x)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.split("quiet:")
    assert "epoch 1: train -ELBO" in before and "epoch" not in after


# ---- 16. figures people can read -----------------------------------------------------------------------
@pytest.fixture
def figures(monkeypatch):
    """The text of every figure vaekit saves (titles, axis labels, legends), by file name."""
    from vaekit import visual

    seen, save = {}, visual._save

    def spy(fig, path):
        texts = [t.get_text() for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
        texts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        texts += [t.get_text() for ax in fig.axes for t in ax.texts]
        texts += [fig._suptitle.get_text()] if fig._suptitle else []
        seen[Path(path).name] = {"texts": [t for t in texts if t], "axes": len(fig.axes)}
        save(fig, path)

    monkeypatch.setattr(visual, "_save", spy)
    return seen


def test_figures_are_large_enough_and_labelled(digits_run, tmp_path, capsys, figures):
    from PIL import Image

    from vaekit import visual

    code, _, _ = run_cli(capsys, "reconstruct", digits_run, "--data", "digits", "-n", "8", "--out", tmp_path / "r.png")
    assert code == 0
    width, height = Image.open(tmp_path / "r.png").size
    assert width >= 8 * 80 and height >= 2 * 80  # 8x8 digits drawn at about 100 pixels each, not 8
    texts = figures["r.png"]["texts"]
    assert {"input", "reconstruction", "#0", "#7"} <= set(texts)

    code, _, _ = run_cli(capsys, "anomalies", digits_run, "--data", "digits", "--score", "elbo",
                         "--out", tmp_path / "a")
    assert code == 0
    scores = np.sort([float(r.split(",")[1]) for r in (tmp_path / "a/scores.csv").read_text().splitlines()[1:]])
    threshold = (scores[2] + scores[3]) / 2  # three flagged
    assert run_cli(capsys, "anomalies", digits_run, "--data", "digits", "--score", "elbo", "--threshold", threshold,
                   "--out", tmp_path / "b")[0] == 0
    shown = figures["most_anomalous.png"]
    captions = [t for t in shown["texts"] if "\n#" in t]
    assert len(captions) == 3 and captions[0].startswith(f"{scores[0]:.3g}")  # the flagged three, with scores
    assert any("flagged below" in t for t in shown["texts"])
    assert Image.open(tmp_path / "b/most_anomalous.png").size[1] >= 2 * 80

    assert run_cli(capsys, "manifold", digits_run, "-n", "5", "--out", tmp_path / "m.png")[0] == 0
    assert {"z[0]", "z[1]"} <= set(figures["m.png"]["texts"])
    assert run_cli(capsys, "interpolate", digits_run, "--data", "digits", "--index", "0", "5", "--steps", "4",
                   "--out", tmp_path / "i.png")[0] == 0
    assert {"start", "end"} <= set(figures["i.png"]["texts"])

    z = np.random.default_rng(0).normal(size=(30, 2))
    visual.latent_scatter(z, np.arange(30) % 3, tmp_path / "s.png", ["a", "b", "c"])
    assert {"a", "b", "c"} <= set(figures["s.png"]["texts"]) and figures["s.png"]["axes"] == 1  # a legend, no bar


def test_captions_of_long_file_names_do_not_run_into_each_other(tmp_path, monkeypatch):
    """Found by reading most_anomalous.png of an image folder: names like other3_00739.png overlapped
    their neighbours. Each caption must stay inside its own column, keeping the name's start and end."""
    import torch

    from vaekit import visual

    drawn = {}

    def keep(fig, path):
        fig.canvas.draw()
        drawn["boxes"] = [t.get_window_extent() for t in fig.axes[0].texts if "\n" in t.get_text()]
        drawn["texts"] = [t.get_text() for t in fig.axes[0].texts if "\n" in t.get_text()]

    monkeypatch.setattr(visual, "_save", keep)
    names = [f"-{i}.5\nsandal_or_sneaker_{i:05d}.png" for i in range(12)]
    visual.image_table({"input": torch.rand(12, 1, 28, 28)}, tmp_path / "t.png", names)
    boxes = drawn["boxes"]
    assert len(boxes) == 12
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))  # left to right, no overlap
    assert drawn["texts"][3].startswith("-3.5\nsandal") and drawn["texts"][3].endswith("03.png")
    assert visual.fit_caption("-1.5\n#7", 13) == "-1.5\n#7"  # short captions untouched


# ---- 15. the same options wherever a verb computes -----------------------------------------------------
@pytest.fixture
def keep_threads():
    import torch

    threads = torch.get_num_threads()  # --threads sets torch's, for this whole test process
    yield
    torch.set_num_threads(threads)


def test_every_computing_verb_takes_device_threads_and_batch_size(digits_run, tmp_path, capsys, keep_threads):
    from vaekit.cli import build_parser

    verbs = build_parser()._subparsers._group_actions[0].choices
    for verb in ("sample", "reconstruct", "vary", "embed", "anomalies", "interpolate", "manifold", "evaluate",
                 "resume"):
        flags = verbs[verb]._option_string_actions
        assert {"--device", "--threads"} <= set(flags), verb
    for verb in ("sample", "reconstruct", "vary", "embed", "interpolate", "manifold"):
        assert "--precision" in verbs[verb]._option_string_actions, verb
    for verb in ("sample", "reconstruct", "vary", "embed", "anomalies", "interpolate", "evaluate"):
        assert "--batch-size" in verbs[verb]._option_string_actions, verb
    for verb in ("sample", "vary", "anomalies", "evaluate"):
        assert "--seed" in verbs[verb]._option_string_actions, verb
    common = ["--device", "cpu", "--threads", "1"]
    assert run_cli(capsys, "embed", digits_run, "--data", "digits", "--limit", "50", "--batch-size", "7",
                   "--precision", "bf16", "--out", tmp_path / "z.npy", *common)[0] == 0
    code, out, _ = run_cli(capsys, "anomalies", digits_run, "--data", "digits", "--limit", "50", "--score", "elbo",
                           "--seed", "3", "--batch-size", "50", "--out", tmp_path / "a", *common)
    assert code == 0 and "seed=3" in "".join(json.loads((digits_run / "heldout_scores.json").read_text())["scores"])
    assert run_cli(capsys, "sample", digits_run, "-n", "2", "--out", tmp_path / "s.png", *common)[0] == 0


def test_where_a_resume_runs_is_not_recorded_in_the_run(tmp_path, capsys, keep_threads):
    table(tmp_path / "t.csv")
    run = tmp_path / "r"
    assert run_cli(capsys, "train", "tabular", "--data", tmp_path / "t.csv", "--out", run, *FAST)[0] == 0
    before = json.loads((run / "config.json").read_text())["train"]
    assert run_cli(capsys, "resume", run, "--epochs", "2", "--progress", "--threads", "2")[0] == 0
    after = json.loads((run / "config.json").read_text())["train"]
    assert after == {**before, "epochs": 2}

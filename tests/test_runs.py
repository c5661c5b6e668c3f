import json
import logging
import shutil

import pytest

from vaekit import runs
from vaekit.cli import main
from vaekit.errors import VaekitError


def test_refuses_a_non_empty_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(VaekitError, match="not a vaekit run"):
        runs.create_run_dir(tmp_path, overwrite=True)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_existing_run_needs_overwrite_and_overwrite_keeps_foreign_files(tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    runs.write_json(run / runs.CONFIG, {"format": runs.FORMAT, "format_version": runs.FORMAT_VERSION})
    (run / "notes.txt").write_text("mine")
    with pytest.raises(VaekitError, match="--resume"):
        runs.create_run_dir(run)
    runs.create_run_dir(run, overwrite=True)
    assert not (run / runs.CONFIG).exists()
    assert (run / "notes.txt").read_text() == "mine"


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    runs.atomic_write(tmp_path / "a.json", b"{}")
    runs.atomic_write(tmp_path / "a.json", b"[]")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == []


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ('{"format": "other"}', "not a vaekit run"),
    ('{"format": "vaekit-run", "format_version": 99}', "upgrade vaekit"),
    ('{"format": "vaekit-run", "format_version": 0}', "version 0"),
    ('{"format": "vaekit-run", "format_version": 1, "evil": 1}', "config.json has unknown keys: evil"),
    ('{"format": "vaekit-run", "format_version": 1, "train": [1, 2]}', "'train' must be a JSON object"),
    ('{"format": "vaekit-run", "format_version": 1, "refined_from": 5}', "'refined_from' must be a string"),
])
def test_bad_configs_are_refused_clearly(tmp_path, content, match):
    (tmp_path / runs.CONFIG).write_text(content)
    with pytest.raises(VaekitError, match=match):
        runs.read_config(tmp_path)


def test_corrupt_safetensors_is_refused(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(VaekitError, match="safetensors"):
        runs.load_tensors(tmp_path / "w.safetensors")


# ---- --overwrite: the old model's reports go with it, the user's files stay ----------------------------
VAEKIT_OUTPUTS = ["evaluation.json", "evaluation.md", "evaluation-2.json", "evaluation-2.md", "embedding.npy",
                  "embedding_labels.npy", "embedding_pca.npy", "embedding_pca.png", "reference.safetensors",
                  "calibration.json", "samples.csv", "reconstruct.csv", "tokenizer.json", "anomalies/scores.csv",
                  "anomalies/histogram.png", "anomalies-2/summary.json", "anomalies-2/most_anomalous.png",
                  "embedding_map/config.json", "embedding_map/model.safetensors", "onnx/encoder.onnx",
                  "onnx/manifest.json", "plots/samples.png"]
USER_FILES = ["notes.txt", "evaluation-final.md", "my_embedding.npy", "anomalies/mine.txt", "anomalies-old/scores.csv",
              "onnx/README"]


def test_overwrite_removes_the_old_models_reports_and_keeps_the_users_files(tmp_path, caplog):
    run = runs.create_run_dir(tmp_path / "run")
    runs.write_json(run / runs.CONFIG, {"format": runs.FORMAT, "format_version": runs.FORMAT_VERSION})
    for name in VAEKIT_OUTPUTS + USER_FILES:
        (run / name).parent.mkdir(exist_ok=True)
        (run / name).write_text(name)
    elsewhere = tmp_path / "elsewhere"  # a folder the user linked in under a name vaekit writes
    elsewhere.mkdir()
    (elsewhere / "encoder.onnx").write_text("theirs")
    (run / "embedding_map").rename(tmp_path / "map")
    (run / "embedding_map").symlink_to(elsewhere)
    with caplog.at_level(logging.INFO, logger="vaekit"):
        runs.create_run_dir(run, overwrite=True)
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())  # not into the link
    assert left == sorted(USER_FILES)
    assert not (run / "anomalies-2").exists() and (run / "anomalies").is_dir()  # emptied folders go
    assert (run / "embedding_map").is_symlink() and (elsewhere / "encoder.onnx").read_text() == "theirs"
    assert "anomalies-2/" in caplog.text and "evaluation.json" in caplog.text


# ---- the folder the runs are in, given for a run ------------------------------------------------------------
def test_the_folder_the_runs_are_in_is_refused_naming_the_runs(tmp_path):
    for name in ("b", "a", "data"):
        (tmp_path / name).mkdir()
    for name in ("a", "b"):
        (tmp_path / name / runs.CONFIG).write_text("{}")
    with pytest.raises(VaekitError, match=r"is not a run directory \(it has no config.json\); the runs in it: "
                                          r"\S+/a, \S+/b$"):
        runs.read_config(tmp_path)
    with pytest.raises(VaekitError, match=r"data is not a run directory \(it has no config.json\)$"):
        runs.read_config(tmp_path / "data")


# ---- a run without weights ------------------------------------------------------------------------------
@pytest.mark.parametrize("status,match", [
    ({"state": "failed", "message": "the loss became nan at step 2; ..."},
     r"run has no weights to use: its training failed before saving any\. status.json says: the loss became nan"),
    ({"state": "running", "epoch": 0, "step": 3}, r"no weights yet: .*vaekit resume .*run"),
    (None, r"model.safetensors is missing"),
])
def test_a_run_without_weights_says_why(tmp_path, status, match):
    run = runs.create_run_dir(tmp_path / "run")
    if status is not None:
        runs.write_json(run / runs.STATUS, status)
    with pytest.raises(VaekitError, match=match):
        runs.read_weights(run)


# ---- resume: the run as it is -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "image", "--model", "seed", "--latent-dim", "2", "--epochs", "2", "--threads", "1",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def _copy(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _files(run) -> dict:
    return {name: (run / name).read_bytes() for name in (runs.CONFIG, runs.CHECKPOINT, runs.WEIGHTS, runs.STATUS)}


@pytest.mark.parametrize("args,match", [
    (["tabular"], "is an image run, not a tabular run"),
    (["image", "--model", "conv"], "holds a 'seed' model, not 'conv'"),
    (["image", "--latent-dim", "4"], "model has --latent-dim 2 (given --latent-dim 4)"),
    (["image", "--latent-dim", "2", "--channels", "8", "16"], "--channels 32 64 (given --channels 8 16)"),
    (["image", "--pixel-layers", "2"], "no --pixel-layers (given --pixel-layers 2)"),
])
def test_train_resume_refuses_another_kind_model_or_model_options(two_epochs, tmp_path, capsys, args, match):
    run = _copy(two_epochs, tmp_path)
    before = _files(run)
    code = main(["train", *args, "--out", str(run), "--resume", "--epochs", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "train a new run" in err
    assert _files(run) == before  # nothing trained, config.json untouched


def test_train_resume_with_the_runs_own_options_continues_and_counts_epochs_done(two_epochs, tmp_path, capsys):
    run = _copy(two_epochs, tmp_path)
    steps = json.loads(runs.tensors_metadata(run / runs.CHECKPOINT)["trainer"])["step"]
    code = main(["train", "image", "--model", "seed", "--latent-dim", "2", "--out", str(run), "--resume",
                 "--epochs", "3", "--threads", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and f"resuming {run} at step {steps} (2 of 3 epochs done)" in out
    assert len((run / runs.METRICS).read_text().splitlines()) == 3


def test_resuming_a_complete_run_says_so_and_how_to_extend_it(two_epochs, tmp_path, capsys):
    run = _copy(two_epochs, tmp_path)
    before = _files(run)
    code = main(["resume", str(run)])
    out = capsys.readouterr().out
    assert code == 0 and "already complete (2/2 epochs)" in out and f"vaekit resume {run} --epochs N" in out
    assert f"resuming {run}" not in out and _files(run) == before
    code = main(["resume", str(run), "--epochs", "1"])  # fewer than trained: refused, config.json kept
    assert code == 2 and "already trained 2 epochs" in capsys.readouterr().err
    assert _files(run) == before


def test_a_complete_run_without_a_checkpoint_is_not_trained_again(two_epochs, tmp_path, capsys):
    run = _copy(two_epochs, tmp_path)
    (run / runs.CHECKPOINT).unlink()  # as vaekit.VAE.save writes a run, or a user saving space
    before = (run / runs.WEIGHTS).read_bytes()
    assert main(["resume", str(run), "--epochs", "3"]) == 2
    assert "no checkpoint to continue from" in capsys.readouterr().err
    assert (run / runs.WEIGHTS).read_bytes() == before

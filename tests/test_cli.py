"""The command line as a user runs it: end to end on digits, a PNG folder and MNIST, and bad input."""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.cli import main

from .conftest import shared_data

FAST = ["--epochs", "2", "--no-progress"]


def run_cli(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse refuses an option's value (usage + one error line, exit 2)
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run on the bundled digits, shared by the use-command tests."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "image", "--out", str(out), "--model", "seed", *FAST]) == 0
    return out


def test_train_writes_a_complete_run(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "status.json",
            "summary.txt", "tb", "plots"} <= names
    assert json.loads((trained / "status.json").read_text())["state"] == "complete"
    metrics = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert {"train_loss", "train_kl", "val_loss", "val_reconstruction"} <= set(metrics[0])
    plots = {p.name for p in (trained / "plots").iterdir()}
    assert {"training_curve.png", "reconstructions.png", "samples.png"} <= plots
    assert any((trained / "tb").iterdir())
    assert "Total params" in (trained / "summary.txt").read_text()


def test_use_commands(trained, capsys, tmp_path):
    assert run_cli(capsys, "sample", trained, "-n", "9", "--out", tmp_path / "s.png")[0] == 0
    assert np.load(tmp_path / "s.npy").shape == (9, 1, 8, 8)
    assert run_cli(capsys, "reconstruct", trained, "--data", "digits", "--out", tmp_path / "r.png")[0] == 0
    assert run_cli(capsys, "embed", trained, "--data", "digits", "--out", tmp_path / "z.csv")[0] == 0
    rows = (tmp_path / "z.csv").read_text().splitlines()
    assert rows[0] == "z0,z1,label" and len(rows) == 1798
    assert (tmp_path / "z_latent.png").exists()
    assert run_cli(capsys, "interpolate", trained, "--data", "digits", "--index", "0", "7",
                   "--out", tmp_path / "i.png")[0] == 0
    assert run_cli(capsys, "manifold", trained, "--out", tmp_path / "m.png")[0] == 0
    for name in ("s.png", "r.png", "i.png", "m.png"):
        assert Image.open(tmp_path / name).size[0] > 50
    code, out, _ = run_cli(capsys, "summary", trained)
    assert code == 0 and "134,165" not in out and "Total params" in out


def test_outputs_never_overwrite_a_users_file(trained, capsys, tmp_path):
    target = tmp_path / "mine.png"
    target.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "sample", trained, "--out", target)
    assert code == 2 and "--overwrite" in err and target.read_bytes() == b"precious"
    code, _, err = run_cli(capsys, "sample", trained, "--out", tmp_path, "--overwrite")
    assert code == 2 and "is a folder; --out takes a file name" in err


def test_summary_without_a_run_is_the_documents_model(capsys):
    code, out, _ = run_cli(capsys, "summary", "--model", "seed")
    assert code == 0 and "Total params: 134,165" in out
    for model in ("text-rnn", "text-seed", "mlp"):  # every kind, with the model's own defaults
        code, out, err = run_cli(capsys, "summary", "--model", model)
        assert code == 0 and "Total params" in out, err


def test_summary_of_a_run_refuses_model_options(trained, capsys):
    code, _, err = run_cli(capsys, "summary", trained, "--model", "seed")
    assert code == 2 and "not both" in err


def test_resume_continues_to_more_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "image", "--out", out, "--epochs", "1", "--no-progress", "--model", "seed",
                   "--keep-best")[0] == 0
    code, said, _ = run_cli(capsys, "train", "image", "--out", out, "--resume", "--epochs", "3")
    assert code == 0
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    best = min(metrics, key=lambda m: m["val_loss"])
    assert metrics[-1]["best_epoch"] == best["epoch"]
    assert f"weights of epoch {best['epoch']} of 3 (best validation -ELBO {best['val_loss']:.2f})" in said


def test_refine_fits_the_encoder_into_a_new_run_and_leaves_the_source_alone(trained, tmp_path, capsys):
    from vaekit import api

    source = {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()}
    out = tmp_path / "refined"
    code, said, _ = run_cli(capsys, "refine", trained, "--out", out, "--epochs", "2", "--no-progress")
    assert code == 0
    assert {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()} == source
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["trainable"] == "encoder" and config["refined_from"] == str(trained.resolve())
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    before = float(re.search(r"validation -ELBO of .*: ([\d.]+)", said)[1])
    assert min(m["val_loss"] for m in metrics) < before
    refined, original = api.load(out).model, api.load(trained).model
    encoder = {n for n, p in refined.named_parameters() if any(p is q for q in refined.encoder_only_parameters())}
    a, b = refined.state_dict(), original.state_dict()
    assert all(torch.equal(a[k], b[k]) == (k not in encoder) for k in a)  # a new encoder, the same decoder
    assert run_cli(capsys, "resume", out, "--epochs", "3")[0] == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    code, _, err = run_cli(capsys, "refine", trained, "--out", trained, "--overwrite")
    assert code == 2 and "choose another --out" in err
    assert {p.name: p.read_bytes() for p in trained.iterdir() if p.is_file()} == source
    with pytest.raises(SystemExit):  # a new model always trains all of itself
        main(["train", "image", "--trainable", "encoder"])


def _pngs(folder: Path, n: int, size=(12, 10), mode="L"):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(folder / label / f"{i}.png")


def test_train_on_a_folder_of_pngs_with_labels(tmp_path, capsys):
    _pngs(tmp_path / "imgs", 20, mode="RGB")
    (tmp_path / "imgs" / "a" / "notes.txt").write_text("not an image")
    out = tmp_path / "run"
    code, _, _ = run_cli(capsys, "train", "image", "--data", tmp_path / "imgs", "--out", out,
                         "--image-size", "16", "16", *FAST)
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["config"]["image_shape"] == [3, 16, 16]
    assert run_cli(capsys, "embed", out, "--data", tmp_path / "imgs", "--out", tmp_path / "z.npy")[0] == 0
    assert np.load(tmp_path / "z.npy").shape == (40, 2)
    assert sorted(np.load(tmp_path / "z_labels.npy").tolist()) == [0] * 20 + [1] * 20


@pytest.mark.skipif(shared_data() is None, reason="../shared/data not present")
def test_train_on_mnist_from_the_shared_data(tmp_path, capsys):
    out = tmp_path / "mnist"
    code, _, _ = run_cli(capsys, "train", "image", "--data", "mnist", "--data-dir", shared_data(), "--limit", "2000",
                         "--val-data", "mnist:test", "--binarize", "--model", "seed", "--out", out, "--epochs", "1",
                         "--no-progress")
    assert code == 0
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert 100 < metrics["val_loss"] < 500  # nats per 784-pixel image after one short epoch
    code, _, _ = run_cli(capsys, "embed", out, "--data", "mnist:test", "--limit", "500", "--out", tmp_path / "z.npy")
    assert code == 0 and np.load(tmp_path / "z.npy").shape == (500, 2)
    assert np.load(tmp_path / "z_labels.npy").shape == (500,)
    # The run moved to a machine where the data lives elsewhere: --data-dir says where.
    config = json.loads((out / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "gone")
    (out / "config.json").write_text(json.dumps(config))
    for command in (["reconstruct", out, "--data", "mnist:test", "-n", "4", "--out", tmp_path / "r.png"],
                    ["interpolate", out, "--data", "mnist:test", "--index", "0", "1", "--out", tmp_path / "i.png"]):
        assert run_cli(capsys, *command, "--data-dir", shared_data())[0] == 0
    assert (tmp_path / "r.png").exists() and (tmp_path / "i.png").exists()


# ---- bad input: one clear message, exit 2, nothing created or overwritten -----------------------------
def _bad(capsys, tmp_path, *args, match):
    out = tmp_path / "never"
    code, _, err = run_cli(capsys, "train", "image", "--out", out, *args, *FAST)
    assert code == 2, err
    assert match in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_missing_path(tmp_path, capsys):
    _bad(capsys, tmp_path, "--data", tmp_path / "nope", match="no such file or folder")


def test_corrupt_and_truncated_files(tmp_path, capsys):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    _bad(capsys, tmp_path, "--data", tmp_path / "bad.npy", match="bad.npy")
    (tmp_path / "trunc-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c"
                                                + b"\x00" * 100)
    _bad(capsys, tmp_path, "--data", tmp_path / "trunc-idx3-ubyte", match="trunc-idx3-ubyte")


def test_mismatched_sizes_and_empty_folders(tmp_path, capsys):
    (tmp_path / "mixed").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "mixed" / "a.png")
    Image.new("L", (9, 8)).save(tmp_path / "mixed" / "b.png")
    _bad(capsys, tmp_path, "--data", tmp_path / "mixed", match="--image-size")
    (tmp_path / "empty").mkdir()
    _bad(capsys, tmp_path, "--data", tmp_path / "empty", match="empty")


@pytest.mark.parametrize("args,match", [
    (["--epochs", "0"], "epochs"), (["--lr", "-1"], "learning rate"), (["--latent-dim", "0"], "latent_dim"),
    (["--val-fraction", "1.5"], "validation fraction"), (["--image-channels", "2"], "channels"),
    (["--precision", "fp16"], "fp16"), (["--device", "mps"], "cpu or cuda"), (["--device", "meta"], "cpu or cuda"),
    (["--device", "cpu:5"], "one CPU device"),
])
def test_invalid_options(tmp_path, capsys, args, match):
    code, _, err = run_cli(capsys, "train", "image", "--out", tmp_path / "never", *args, "--no-progress")
    assert code == 2 and match in err
    assert not (tmp_path / "never").exists()


def test_existing_run_and_foreign_folder_are_never_overwritten(trained, tmp_path, capsys):
    before = (trained / "model.safetensors").read_bytes()
    code, _, err = run_cli(capsys, "train", "image", "--out", trained, *FAST)
    assert code == 2 and "--resume" in err
    assert (trained / "model.safetensors").read_bytes() == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("1,2,3")
    code, _, err = run_cli(capsys, "train", "image", "--out", tmp_path / "mine", "--overwrite", *FAST)
    assert code == 2 and (tmp_path / "mine" / "data.csv").read_text() == "1,2,3"


def test_loading_bad_runs(tmp_path, capsys, trained):
    assert run_cli(capsys, "sample", tmp_path / "nope")[0] == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((trained / name).read_bytes())
    (broken / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes()[:200])
    code, _, err = run_cli(capsys, "sample", broken)
    assert code == 2 and "safetensors" in err
    config = json.loads((trained / "config.json").read_text())
    config["model"]["config"]["latent_dim"] = 3
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes())
    code, _, err = run_cli(capsys, "sample", broken)
    assert code == 2 and "does not fit" in err
    config["model"]["config"]["evil"] = "__import__('os')"
    (broken / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "sample", broken)
    assert code == 2 and "evil" in err


def test_data_that_does_not_fit_the_run(trained, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.zeros((3, 28, 28), np.uint8))
    code, _, err = run_cli(capsys, "embed", trained, "--data", tmp_path / "big.npy", "--out", tmp_path / "z.npy")
    assert code == 2 and "(1, 8, 8)" in err


@pytest.mark.parametrize("images,match", [
    (np.full((2, 1, 8, 8), np.nan, np.float32), "NaN"), (np.full((2, 1, 8, 8), 200.0, np.float32), r"\[0, 1\]"),
    (np.full((2, 1, 8, 8), -3, np.int64), "0..255"),
])
def test_the_python_api_refuses_images_the_model_was_not_trained_on(trained, images, match):
    import vaekit

    run = vaekit.load(trained)
    for method in (run.encode, run.reconstruct, run.score):
        with pytest.raises(vaekit.VaekitError, match=match):
            method(images)


def test_integer_images_are_rescaled_like_uint8(trained):
    import vaekit

    run = vaekit.load(trained)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8))
    assert np.array_equal(run.encode(pixels.astype(np.int64)), run.encode(pixels.astype(np.uint8)))


def test_read_only_output_folder(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, _, err = run_cli(capsys, "train", "image", "--out", ro / "run", *FAST)
    assert code == 2 and "cannot write" in err


def test_console_script_and_ctrl_c_saves_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vaekit.cli", "train", "image", "--out", str(out), "--epochs", "200",
           "--no-progress", "--model", "seed", "--checkpoint-every", "5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "vaekit resume" in err
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "interrupted"
    done = subprocess.run([sys.executable, "-m", "vaekit.cli", "resume", str(out), "--epochs",
                           str(status["epoch"] + 1)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "complete"


@dataclasses.dataclass(frozen=True)
class _Documented:
    first: int = 1  # what first is,
    # and the rest of its sentence
    second: int = 2  # second's own words

    # a comment after a blank line belongs to no field
    third: int = 3


def test_every_data_and_training_option_has_help():
    """The options come from the config dataclasses' comments: a field with its comment above it, or none,
    is an option without help (--categorical was, when new)."""
    import dataclasses

    from vaekit import modalities
    from vaekit.cli.options import field_docs
    from vaekit.training import TrainConfig

    for cls in (*(modalities.get(k).DataConfig for k in modalities.names()), TrainConfig):
        docs = field_docs(cls)
        assert [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)] == [], cls.__name__


def test_option_help_is_the_whole_comment_beside_a_field(capsys):
    from vaekit.cli.options import field_docs

    assert field_docs(_Documented) == {"first": "what first is, and the rest of its sentence",
                                       "second": "second's own words"}
    with pytest.raises(SystemExit):
        main(["train", "image", "-h"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "training goes on from the latest weights" in help_text  # average_from's comment, past its first line

"""Faults during training: SIGKILL, a kill between checkpoint files, NaN/inf, a full or read-only disk.

What must hold after each: no file of the run is half-written, the run resumes from its last
complete checkpoint, and the result equals an uninterrupted run with the same seed (bit for bit
on CPU with one thread: every test here trains with threads=1, where PyTorch's fp32 CPU kernels
are deterministic across processes).
"""
import errno
import json
import math
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

from vaekit import api, runs
from vaekit.cli import main
from vaekit.data import TensorData
from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.training import TrainConfig, Trainer

from .faultlib import check_run_files, checkpoint_step, kill_resume_loop, pickle_bomb, same_weights, train_command


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    # The reference runs in this process (same command, same code path as the subprocesses).
    reference = tmp_path / "reference"
    assert main(train_command(reference)[3:]) == 0
    capsys.readouterr()
    seed = int(os.environ.get("VAEKIT_FAULT_SEED", "20261121"))  # set it to try other kill moments
    report = kill_resume_loop(tmp_path / "run", kills=3, seed=seed, reference=reference)
    assert report.kills_tried == 3, report.log
    assert report.corrupt == []
    for before, resumed in report.resumed_at:  # each resume started at the last complete checkpoint
        assert resumed == before
    assert report.identical, "the resumed run's weights differ from the uninterrupted run's"
    assert report.kills_survived == 3
    assert not list((tmp_path / "run").glob(".*.tmp"))
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [m["val_loss"] for m in metrics] == [m["val_loss"] for m in expected]


# ---- in-process trainers on the digits -------------------------------------------------------------
def make_trainer(data, run=None, epochs=2, **config):
    train, val = data
    torch.manual_seed(0)
    vae = build_model("seed", image_shape=tuple(train.x.shape[1:]), latent_dim=2)
    cfg = TrainConfig(epochs=epochs, batch_size=64, progress=False, seed=0, threads=1, **config)
    return Trainer(vae, cfg, train, val, run)


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Killed(BaseException):
    """Stands in for SIGKILL at an exact point: nothing after it runs, no handler sees it."""


def test_killed_between_checkpoint_files_resumes_from_the_checkpoint(digits_split, tmp_path, monkeypatch):
    full = make_trainer(digits_split, runs.create_run_dir(tmp_path / "full"), checkpoint_every=5)
    full.fit()
    part = make_trainer(digits_split, runs.create_run_dir(tmp_path / "part"), checkpoint_every=5)
    save = runs.save_tensors

    def dies_before_the_weights(path, tensors, metadata=None):
        if Path(path).name == runs.WEIGHTS and part.state.step == 15:
            raise Killed  # checkpoint.safetensors of step 15 is written, model.safetensors is not
        save(path, tensors, metadata)

    monkeypatch.setattr(runs, "save_tensors", dies_before_the_weights)
    with pytest.raises(Killed):
        part.fit()
    monkeypatch.undo()
    assert checkpoint_step(tmp_path / "part") == 15 and check_run_files(tmp_path / "part") == []
    resumed = make_trainer(digits_split, tmp_path / "part", checkpoint_every=5)
    resumed.load_checkpoint()
    assert resumed.state.step == 15
    resumed.fit()
    assert equal(weights(full), weights(resumed))
    assert same_weights(tmp_path / "full" / runs.CHECKPOINT, tmp_path / "part" / runs.CHECKPOINT)


@pytest.mark.parametrize("lost,keep_best", [(runs.WEIGHTS, False), (runs.METRICS, False), (runs.WEIGHTS, True)])
def test_killed_after_the_last_checkpoint_finishes_with_its_weights_and_metrics(digits_split, tmp_path, monkeypatch,
                                                                                   lost, keep_best):
    # Issue 30: a kill after the final checkpoint but before model.safetensors / metrics.jsonl were
    # written left them one checkpoint behind; the resume had no step left to train, so it finished
    # the run with the previous checkpoint's weights and without the last epoch's metrics.
    full = make_trainer(digits_split, runs.create_run_dir(tmp_path / "full"), checkpoint_every=5,
                        keep_best=keep_best)
    full.fit()
    part = make_trainer(digits_split, runs.create_run_dir(tmp_path / "part"), checkpoint_every=5,
                        keep_best=keep_best)
    save, write = runs.save_tensors, runs.atomic_write

    def dies(real):
        def writer(path, *args, **kwargs):
            if Path(path).name == lost and part.state.epoch == 2:
                raise Killed  # the final checkpoint is written, `lost` is not
            return real(path, *args, **kwargs)
        return writer

    monkeypatch.setattr(runs, "save_tensors", dies(save))
    monkeypatch.setattr(runs, "atomic_write", dies(write))
    with pytest.raises(Killed):
        part.fit()
    monkeypatch.undo()
    assert checkpoint_step(tmp_path / "part") == checkpoint_step(tmp_path / "full")
    resumed = make_trainer(digits_split, tmp_path / "part", checkpoint_every=5, keep_best=keep_best)
    resumed.load_checkpoint()
    resumed.fit()
    assert same_weights(tmp_path / "full" / runs.WEIGHTS, tmp_path / "part" / runs.WEIGHTS)
    untimed = [[{k: v for k, v in json.loads(line).items() if k not in ("seconds", "examples_per_s")}
                for line in (run / runs.METRICS).read_text().splitlines()]
               for run in (tmp_path / "full", tmp_path / "part")]
    assert len(untimed[0]) == 2 and untimed[0] == untimed[1]


def test_resume_removes_temporaries_a_kill_left_behind(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    make_trainer(digits_split, run, epochs=1).fit()
    (run / ".checkpoint.safetensors.k2j4x9.tmp").write_bytes(b"half a checkp")
    resumed = make_trainer(digits_split, run, epochs=2)
    resumed.load_checkpoint()
    resumed.fit()
    assert not list(run.glob(".*.tmp"))


# ---- NaN / inf ------------------------------------------------------------------------------------
def with_bad_example(data, index=3):
    """The digits as floats with one example full of NaN: one bad batch per epoch."""
    train, val = data
    x = train.x.float() / 255
    x[index] = float("nan")
    return TensorData(x, train.y, "none"), TensorData(val.x.float() / 255, val.y, "none")


def test_nan_in_the_data_stops_naming_the_step_and_cause_and_keeps_the_checkpoint(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    trainer = make_trainer(with_bad_example(digits_split), run, epochs=2, checkpoint_every=3)
    with pytest.raises(VaekitError) as error:
        trainer.fit()
    message = str(error.value)
    step = int(message.split("at step ")[1].split(";")[0])
    saved = checkpoint_step(run)
    assert "loss became nan" in message and "learning rate" in message and "data" in message
    assert f"checkpoint (step {saved})" in message and saved == 3 * ((step - 1) // 3)
    assert all(torch.isfinite(v).all() for v in runs.load_tensors(run / runs.CHECKPOINT).values()
               if v.is_floating_point())


def test_nan_gradients_with_a_finite_loss_stop_before_the_update(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    trainer = make_trainer(digits_split, run, epochs=1, checkpoint_every=4)
    weight = next(trainer.model.parameters())
    weight.register_hook(lambda g: g * float("inf") if trainer.state.step == 9 else g)
    with pytest.raises(VaekitError, match=r"gradients became (nan|inf) at step 10; .*step 8\)"):
        trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # the bad update never ran


def _poison_batch(monkeypatch, at_step: int) -> None:
    """Every Trainer's batch at this step (0-based) becomes NaN: the loss of that step is NaN."""
    original = Trainer._step

    def poisoned(self, batch, weight):
        return original(self, batch * float("nan") if self.state.step == at_step else batch, weight)

    monkeypatch.setattr(Trainer, "_step", poisoned)


def test_cli_nan_message_is_one_line_and_the_run_is_marked_failed(tmp_path, capsys, monkeypatch):
    _poison_batch(monkeypatch, at_step=5)
    out = tmp_path / "run"
    code = main(["train", "image", "--out", str(out), "--model", "seed", "--epochs", "1", "--threads", "1",
                 "--checkpoint-every", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "at step 6" in err and "--lr" in err
    assert json.loads((out / "status.json").read_text())["state"] == "failed"


def test_the_nan_message_gets_its_own_line_after_the_progress_bar(tmp_path, capsys, monkeypatch):
    _poison_batch(monkeypatch, at_step=1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the bar is drawn on a terminal only
    code = main(["train", "image", "--out", str(tmp_path / "run"), "--model", "seed", "--epochs", "1",
                 "--threads", "1", "--progress"])
    err = capsys.readouterr().err
    lines = err.rstrip("\n").split("\n")
    assert code == 2 and "it/s" in err  # the bar was drawn
    # the bar was closed (cleared, \r) before the message: it starts the last line a terminal shows, and
    # nothing is drawn after it
    assert lines[-1].split("\r")[-1].startswith("vaekit: error: the loss became nan at step 2")
    assert sum("vaekit: error:" in line for line in lines) == 1


def test_using_a_run_whose_training_failed_says_why_it_has_no_weights(tmp_path, capsys, monkeypatch):
    _poison_batch(monkeypatch, at_step=1)
    run = tmp_path / "run"
    assert main(["train", "image", "--out", str(run), "--model", "seed", "--epochs", "1", "--threads", "1",
                 "--no-progress"]) == 2
    capsys.readouterr()
    for command in (["sample", str(run)], ["anomalies", str(run), "--data", "digits"],
                    ["evaluate", str(run), "--data", "digits", "--k", "2"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "its training failed before saving any" in err and "the loss became nan at step 2" in err, command
        assert "is missing" not in err


def test_skip_nonfinite_skips_counts_and_resumes_exactly(digits_split, tmp_path):
    data = with_bad_example(digits_split)
    full = make_trainer(data, runs.create_run_dir(tmp_path / "full"), epochs=3, skip_nonfinite=5)
    history = full.fit()
    assert [m["skipped_batches"] for m in history] == [1, 1, 1] and full.state.skipped == 3
    assert all(math.isfinite(m["train_loss"]) for m in history)
    assert all(torch.isfinite(p).all() for p in full.model.parameters())

    part = make_trainer(data, runs.create_run_dir(tmp_path / "part"), epochs=3, skip_nonfinite=5,
                        checkpoint_every=7)
    original = part._step

    def crash(batch, weight):
        if part.state.step == 40:
            raise Killed
        return original(batch, weight)

    part._step = crash
    with pytest.raises(Killed):
        part.fit()
    resumed = make_trainer(data, tmp_path / "part", epochs=3, skip_nonfinite=5, checkpoint_every=7)
    resumed.load_checkpoint()
    resumed.fit()
    assert equal(weights(full), weights(resumed))
    assert [m["skipped_batches"] for m in resumed.state.history] == [1, 1, 1]
    assert [m["train_loss"] for m in resumed.state.history] == [m["train_loss"] for m in history]

    few = make_trainer(data, None, epochs=3, skip_nonfinite=2)
    with pytest.raises(VaekitError, match="after skipping 2 such batches"):
        few.fit()


# ---- disk full, read-only -------------------------------------------------------------------------
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(digits_split, tmp_path, monkeypatch):
    run = runs.create_run_dir(tmp_path / "run")
    trainer = make_trainer(digits_split, run, epochs=2, checkpoint_every=5)
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up at step 10: every write from then on fails with ENOSPC
        if trainer.state.step >= 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(VaekitError, match=r"checkpoint.safetensors: the disk is full; the previous version is kept"):
        api._fit(trainer)
    monkeypatch.undo()
    assert checkpoint_step(run) == 5 and check_run_files(run) == []
    assert not list(run.glob(".*.tmp"))
    resumed = make_trainer(digits_split, run, epochs=2, checkpoint_every=5)
    resumed.load_checkpoint()
    assert resumed.state.step == 5


def test_too_little_free_space_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda p: usage._replace(free=100_000))
    out = tmp_path / "run"
    code = main(["train", "image", "--out", str(out), "--model", "seed", "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "MiB free" in err and "need" in err
    assert not (out / runs.CHECKPOINT).exists()


def read_only(monkeypatch, folder: Path):
    """Simulate a read-only file system under `folder`: creating files there fails with EROFS.
    (chmod is no test when the tests run as root, who ignores permission bits; EROFS binds root too.)"""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_read_only_output_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    code = main(["train", "image", "--out", str(tmp_path / "ro" / "run"), "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write to" in err and "read-only" in err and "Traceback" not in err


def test_resuming_a_run_on_a_read_only_disk_is_refused_before_training(digits_split, tmp_path, monkeypatch):
    run = runs.create_run_dir(tmp_path / "run")
    make_trainer(digits_split, run, epochs=1).fit()
    before = (run / runs.CHECKPOINT).read_bytes()
    read_only(monkeypatch, run)
    resumed = make_trainer(digits_split, run, epochs=2)
    resumed.load_checkpoint()
    with pytest.raises(VaekitError, match="read-only"):
        resumed.fit()
    assert resumed.state.step == 23 and (run / runs.CHECKPOINT).read_bytes() == before


def test_files_are_readable_by_the_group_not_0600(tmp_path):
    runs.atomic_write(tmp_path / "a.json", b"{}")
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


# ---- untrusted run directories --------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "run"
    assert main(["train", "image", "--out", str(out), "--model", "seed", "--epochs", "1", "--threads", "1",
                 "--no-progress"]) == 0
    return out


def test_loading_and_resuming_never_unpickle(small_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)

    def forbidden(*args, **kwargs):
        raise AssertionError("vaekit unpickled something")

    for module, name in [(torch, "load"), (torch.serialization, "load"), (pickle, "load"), (pickle, "loads"),
                         (pickle, "Unpickler")]:
        monkeypatch.setattr(module, name, forbidden)
    assert api.load(run).sample(2).shape == (2, 1, 8, 8)
    api.resume(run, epochs=2, echo=lambda *a: None)
    assert json.loads((run / "status.json").read_text())["state"] == "complete"


def test_a_pickle_named_like_a_checkpoint_is_refused_and_never_run(small_run, tmp_path):
    marker = tmp_path / "PWNED"
    bomb = pickle_bomb(marker)
    pickle.loads(bomb)  # the bomb is live: unpickling it runs its code
    assert marker.exists()
    marker.unlink()
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.CONFIG).write_bytes((small_run / runs.CONFIG).read_bytes())
    for name in (runs.WEIGHTS, runs.CHECKPOINT):
        (run / name).write_bytes(bomb)
    torch.save({"w": torch.zeros(2)}, run / "torch-format.safetensors")
    with pytest.raises(VaekitError, match="not a readable safetensors file"):
        api.load(run)
    with pytest.raises(VaekitError, match="not a readable safetensors file"):
        api.resume(run, echo=lambda *a: None)
    with pytest.raises(VaekitError, match="not a readable safetensors file"):
        runs.load_tensors(run / "torch-format.safetensors")
    assert not marker.exists()


@pytest.mark.parametrize("version,match", [(runs.FORMAT_VERSION + 1, "upgrade vaekit"),
                                           (runs.FORMAT_VERSION - 1, f"reads version {runs.FORMAT_VERSION}")])
def test_a_run_of_another_format_version_gets_a_clear_message(small_run, tmp_path, capsys, version, match):
    run = tmp_path / "run"
    run.mkdir()
    config = json.loads((small_run / runs.CONFIG).read_text())
    (run / runs.CONFIG).write_text(json.dumps({**config, "format_version": version}))
    (run / runs.WEIGHTS).write_bytes((small_run / runs.WEIGHTS).read_bytes())
    for command in (["sample", str(run)], ["resume", str(run)]):
        code = main(command)
        err = capsys.readouterr().err
        assert code == 2 and match in err and f"version {version}" in err


@pytest.mark.parametrize("change,match", [
    (lambda c: c.update(evil=1), "config.json has unknown keys: evil"),
    (lambda c: c.update(train=[1, 2]), "config.json 'train' must be a JSON object, got [1, 2]"),
    (lambda c: c["train"].update(epochs="ten"), "config.json 'train' 'epochs' must be a whole number, got 'ten'"),
    (lambda c: c["train"].update(lr=float("nan")), "config.json 'train' 'lr' must be a finite number, got nan"),
    (lambda c: c["train"].update(evil=1), "config.json 'train' has unknown keys: evil"),
    (lambda c: c.update(estimator="yes"), "config.json 'estimator' must be a JSON object"),
])
def test_config_json_is_checked_whole_on_load(small_run, tmp_path, capsys, change, match):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    config = json.loads((run / runs.CONFIG).read_text())
    change(config)
    (run / runs.CONFIG).write_text(json.dumps(config))
    with pytest.raises(VaekitError) as error:
        api.load(run)
    assert match in str(error.value)
    assert main(["sample", str(run)]) == 2 and match in capsys.readouterr().err


def test_configs_of_earlier_versions_still_load_and_resume(small_run, tmp_path):
    # Training settings added since (and a setting a later check refuses) are no reason not to load.
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    config = json.loads((run / runs.CONFIG).read_text())
    for key in ("average_from", "trainable", "kl_warmup_epochs", "skip_nonfinite", "keep_best"):
        del config["train"][key]
    (run / runs.CONFIG).write_text(json.dumps(config))
    assert api.load(run).sample(2).shape == (2, 1, 8, 8)
    api.resume(run, epochs=2, echo=lambda *a: None)
    assert json.loads((run / "status.json").read_text())["state"] == "complete"
    config["train"]["checkpoint_every"] = -2  # stored before negatives were refused: loads, not trained
    (run / runs.CONFIG).write_text(json.dumps(config))
    assert api.load(run).sample(2).shape == (2, 1, 8, 8)

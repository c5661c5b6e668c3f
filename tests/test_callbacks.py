"""Training features as callbacks: each keeps its own state in the checkpoint, so a resume restores
it, and a checkpoint written before the callbacks (tests/data/legacy_checkpoint) still resumes."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from vaekit import runs
from vaekit.models import build_model
from vaekit.training import Callback, CollapseMonitor, KeepBest, TrainConfig, Trainer, WeightAveraging

LEGACY = Path(__file__).parent / "data" / "legacy_checkpoint"


def mlp_trainer(data, run, callbacks=None, **config):
    """The fixture's trainer: image-mlp (hidden 32) on the digits, seed 0."""
    train, val = data
    torch.manual_seed(0)
    vae = build_model("image-mlp", image_shape=(1, 8, 8), latent_dim=4, hidden=(32,))
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 64, "seed": 0, "progress": False} | config)
    return Trainer(vae, cfg, train, val, run, callbacks)


def test_a_checkpoint_from_before_the_callbacks_resumes_as_its_run_went_on(digits_split, tmp_path):
    # Written by the trainer of commit 1404a03 (tests/data/make_legacy_checkpoint.py): killed at
    # step 32 of 69, its checkpoint of step 30 holds the mean of epoch 1 as average.* tensors and its
    # count in the trainer's JSON; model.safetensors is epoch 1's (the best so far).
    run = runs.create_run_dir(tmp_path / "run")
    for name in (runs.CHECKPOINT, runs.WEIGHTS):
        shutil.copy(LEGACY / name, run / name)
    trainer = mlp_trainer(digits_split, run, average_from=1, keep_best=True, checkpoint_every=30)
    trainer.load_checkpoint()
    averaging = trainer.features[0]
    assert isinstance(averaging, WeightAveraging) and averaging.epochs == 1
    saved = runs.load_tensors(LEGACY / runs.CHECKPOINT)
    assert all(torch.equal(v, saved[f"average.{k}"]) for k, v in averaging.average.items())
    assert trainer.state.step == 30 and trainer.state.batch_in_epoch == 7
    history = trainer.fit()
    expected = json.loads((LEGACY / "expected_history.json").read_text())
    assert [(m["best_epoch"], m["averaged_epochs"]) for m in history] == [
        (m["best_epoch"], m["averaged_epochs"]) for m in expected]
    # Bit-identical on the machine that wrote the fixture; another CPU may round differently.
    assert [m["val_loss"] for m in history] == pytest.approx([m["val_loss"] for m in expected], rel=1e-5)
    final, uninterrupted = runs.load_tensors(run / runs.WEIGHTS), runs.load_tensors(LEGACY / "expected.safetensors")
    assert final.keys() == uninterrupted.keys()
    assert all(torch.allclose(final[k], uninterrupted[k], rtol=1e-4, atol=1e-5) for k in final)


class Counter(Callback):
    """A caller's stateful callback: a tensor and a number, both resumed."""

    def __init__(self):
        self.steps, self.total = 0, torch.zeros(2)

    def on_step_end(self, trainer, logs):
        self.steps += 1
        self.total += torch.tensor([logs["reconstruction"], logs["kl"]])

    def state_dict(self):
        return {"steps": self.steps, "total": self.total}

    def load_state_dict(self, state):
        self.steps, self.total = state["steps"], state["total"].cpu()


def test_every_callback_state_is_in_the_checkpoint_and_comes_back(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    monitor = CollapseMonitor(digits_split[1], kl_threshold=1e9, min_steps=0)  # every epoch "collapses": a streak
    with pytest.warns(UserWarning, match="collapsed"):
        mlp_trainer(digits_split, run, [monitor, counter := Counter()], epochs=3, average_from=2, keep_best=True).fit()
    meta = runs.tensors_metadata(run / runs.CHECKPOINT)
    tensors = runs.load_tensors(run / runs.CHECKPOINT)
    history = [json.loads(line) for line in (run / runs.METRICS).read_text().splitlines()]
    best = min(history, key=lambda m: m["val_loss"])
    assert json.loads(meta["callbacks"]) == {
        "average": {"epochs": 2}, "KeepBest": {"best_epoch": best["epoch"], "best_loss": best["val_loss"]},
        "CollapseMonitor": {"collapsed_epochs": 3, "collapsed_steps": 69, "last_step": 69, "warned": True},
        "Counter": {"steps": 69}}
    assert "averaged" not in json.loads(meta["trainer"])  # the mean's count is the callback's own
    assert {k for k in tensors if k.startswith("average.")} == {f"average.{k}" for k in tensors_of_model(tensors)}
    assert torch.equal(tensors["Counter.total"], counter.total)

    fresh_monitor, fresh_counter = CollapseMonitor(digits_split[1], kl_threshold=1e9, min_steps=0), Counter()
    resumed = mlp_trainer(digits_split, run, [fresh_monitor, fresh_counter], epochs=4, average_from=2, keep_best=True)
    resumed.load_checkpoint()
    averaging, keep = resumed.features
    assert (averaging.epochs, keep.best_epoch) == (2, best["epoch"])
    assert (fresh_monitor.collapsed_epochs, fresh_monitor.warned) == (3, True)
    assert fresh_counter.steps == 69 and torch.equal(fresh_counter.total, counter.total)
    resumed.fit()  # already warned: no second warning
    assert fresh_monitor.collapsed_epochs == 4 and fresh_monitor.collapsed_steps == 92 and fresh_counter.steps == 92


def test_a_few_short_epochs_near_zero_kl_are_not_called_a_collapse(digits_split, tmp_path, recwarn):
    """Small tables take 2-3 steps an epoch and sit near zero KL for their first epochs before the code is used:
    three epochs alone warned on every such run (iris: KL 0.008 at epoch 3, 1.29 at epoch 300). The streak must
    also last min_steps optimizer steps; a long streak still warns."""
    monitor = CollapseMonitor(digits_split[1], kl_threshold=1e9)  # every epoch "collapses", 23 steps each
    mlp_trainer(digits_split, runs.create_run_dir(tmp_path / "a"), [monitor], epochs=3).fit()
    assert monitor.collapsed_epochs == 3 and not monitor.warned
    assert not [w for w in recwarn if "collapsed" in str(w.message)]
    monitor = CollapseMonitor(digits_split[1], kl_threshold=1e9, min_steps=60)
    with pytest.warns(UserWarning, match="collapsed"):
        mlp_trainer(digits_split, runs.create_run_dir(tmp_path / "b"), [monitor], epochs=3).fit()
    assert monitor.warned and monitor.collapsed_steps == 69


def tensors_of_model(tensors: dict) -> set:
    return {k[len("model."):] for k in tensors if k.startswith("model.")}


def test_keep_best_resumed_from_a_checkpoint_without_its_state_chooses_from_the_history(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    mlp_trainer(digits_split, run, epochs=2).fit()
    resumed = mlp_trainer(digits_split, run, epochs=3, keep_best=True)
    resumed.load_checkpoint()
    losses = [m["val_loss"] for m in resumed.state.history]
    history = resumed.fit()
    best = min(range(3), key=lambda i: history[i]["val_loss"]) + 1
    assert history[-1]["best_epoch"] == best and losses == [m["val_loss"] for m in history[:2]]
    assert isinstance(resumed.features[0], KeepBest)


def test_with_free_bits_keep_best_selects_on_the_objective_training_minimises(digits_split):
    """Free bits make the KL up to the floor free; keep-best judging by the -ELBO would keep the epoch
    before the code was in use (issue 25). The validation objective is reconstruction + the sum of
    max(mean KL per dimension, floor), and it is what keep-best compares."""
    trainer = mlp_trainer(digits_split, None, epochs=1, free_bits=2.0)
    trainer.fit()
    val = trainer.evaluate(trainer.val_data)
    assert val["objective"] >= val["reconstruction"] + 2.0 * trainer.model.latent_dim - 1e-6
    assert val["objective"] >= val["loss"] - 1e-6
    keep = KeepBest()
    keep.best_epoch = 0
    for epoch, (elbo, objective) in enumerate([(90.0, 120.0), (95.0, 110.0), (99.0, 115.0)], 1):
        keep._consider({"epoch": epoch, "val_loss": elbo, "val_objective": objective})
    assert keep.best_epoch == 2
    assert "objective" not in mlp_trainer(digits_split, None, epochs=1).evaluate(trainer.val_data)

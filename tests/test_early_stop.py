"""Early stopping (early_stop) and learning-rate reduction on plateau (lr_schedule plateau): callbacks
that watch the validation -ELBO, keep their counts in the checkpoint, and resume exactly.

The validation -ELBO is scripted per epoch (the counting is what is tested, not the model)."""
import json
import logging

import pytest
import torch

from vaekit import runs
from vaekit.cli import main
from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.training import EarlyStopping, ReduceLROnPlateau, TrainConfig, Trainer


def trainer_for(data, run=None, losses=None, **config):
    """image-mlp (hidden 32) on the digits, seed 0; with `losses`, epoch E's validation -ELBO is losses[E-1]."""
    train, val = data
    torch.manual_seed(0)
    vae = build_model("image-mlp", image_shape=(1, 8, 8), latent_dim=4, hidden=(32,))
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 64, "seed": 0, "progress": False} | config)
    trainer = Trainer(vae, cfg, train, val, run)
    if losses is not None:
        def evaluate(data, batch_size=500, shard=False):
            loss = losses[trainer.state.epoch]  # state.epoch: the epochs done before this validation
            return {"loss": loss, "reconstruction": loss, "kl": 0.0}

        trainer.evaluate = evaluate
    return trainer


def lrs_by_epoch(trainer) -> list[float]:
    """Runs fit() and returns the learning rate of each epoch's steps (one value each, or it fails)."""
    seen: dict[int, set] = {}
    step = trainer._step

    def recording(batch, weight):
        seen.setdefault(trainer.state.epoch + 1, set()).add(trainer.optimizer.param_groups[0]["lr"])
        return step(batch, weight)

    trainer._step = recording
    trainer.fit()
    assert all(len(v) == 1 for v in seen.values())
    return [v.pop() for _, v in sorted(seen.items())]


def test_early_stop_ends_the_run_complete_when_validation_stops_improving(digits_split, tmp_path, caplog):
    run = runs.create_run_dir(tmp_path / "run")
    # Best at epoch 2; epochs 3 and 4 are no better (an equal loss is no improvement).
    trainer = trainer_for(digits_split, run, [5.0, 4.0, 4.5, 4.0, 3.0, 2.0], epochs=6, early_stop=2, keep_best=True)
    # The CLI, run in-process by earlier tests, stops "vaekit.train" propagating to the root logger
    # (its lines go to stdout): listen on the logger itself.
    logger = logging.getLogger("vaekit.train")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="vaekit.train"):
            history = trainer.fit()
    finally:
        logger.removeHandler(caplog.handler)
    assert [m["epoch"] for m in history] == [1, 2, 3, 4]
    status = json.loads((run / runs.STATUS).read_text())
    assert status["state"] == "complete" and status["epoch"] == 4
    assert "stopped early at epoch 4 (best epoch 2)" in status["message"]
    assert "stopped early at epoch 4 (best epoch 2)" in caplog.text
    # keep_best: the run ends on the best epoch's weights, which model.safetensors holds.
    saved = runs.load_tensors(run / runs.WEIGHTS)
    assert all(torch.equal(v, saved[k]) for k, v in trainer.model.state_dict().items())
    assert trainer.features[0].best_epoch == 2

    # Resumed (e.g. after a kill before the status was written), it stops at once and trains nothing.
    again = trainer_for(digits_split, run, [5.0, 4.0, 4.5, 4.0, 3.0, 2.0], epochs=6, early_stop=2, keep_best=True)
    again.load_checkpoint()
    again._step = lambda batch, weight: pytest.fail("a stopped run trained again")
    assert len(again.fit()) == 4


def test_early_stop_lets_an_improving_run_finish(digits_split):
    # Real validation: the loss falls every epoch on this data, so patience 1 never runs out.
    history = trainer_for(digits_split, epochs=3, early_stop=1).fit()
    assert len(history) == 3
    assert history[-1]["val_loss"] < history[0]["val_loss"]


def test_plateau_multiplies_the_lr_after_patience_epochs_down_to_lr_min(digits_split):
    flat = [5.0] * 8
    trainer = trainer_for(digits_split, losses=flat, epochs=7, lr=1e-3, lr_schedule="plateau", lr_patience=2)
    # Epoch 1 is the best; epochs 2-3 are no better -> halved from epoch 4; 4-5 -> halved again from 6.
    assert lrs_by_epoch(trainer) == pytest.approx([1e-3] * 3 + [5e-4] * 2 + [2.5e-4] * 2)
    assert [m.get("lr_reduced_to") for m in trainer.state.history] == pytest.approx(
        [None, None, 5e-4, None, 2.5e-4, None, 1.25e-4])
    floored = trainer_for(digits_split, losses=flat, epochs=7, lr=1e-3, lr_schedule="plateau", lr_patience=1,
                          lr_factor=0.1, lr_min=3e-5)
    assert lrs_by_epoch(floored) == pytest.approx([1e-3, 1e-3, 1e-4, 3e-5, 3e-5, 3e-5, 3e-5])
    # An improvement resets the count.
    better = trainer_for(digits_split, losses=[5.0, 6.0, 4.0, 6.0, 6.0], epochs=5, lr_schedule="plateau",
                         lr_patience=2)
    assert lrs_by_epoch(better) == pytest.approx([1e-3] * 5)


def test_a_resume_in_the_middle_restores_both_callbacks_exactly(digits_split, tmp_path):
    losses = [5.0, 4.0, 4.5, 4.6, 3.9, 4.0, 4.1, 4.2, 4.3]
    config = dict(epochs=8, early_stop=3, lr_schedule="plateau", lr_patience=1, checkpoint_every=7)
    full = trainer_for(digits_split, runs.create_run_dir(tmp_path / "full"), losses, **config)
    full_lrs = lrs_by_epoch(full)
    # Plateau (patience 1): halved after each epoch no better than the best (3, 4, 6, 7); early stop's
    # patience of 3 runs out only after epoch 8, the last anyway.
    assert len(full.state.history) == 8
    assert full_lrs == pytest.approx([1e-3] * 3 + [5e-4, 2.5e-4, 2.5e-4, 1.25e-4, 6.25e-5])

    # Killed in epoch 5 (23 steps per epoch), after the mid-epoch checkpoint of step 98.
    part = trainer_for(digits_split, runs.create_run_dir(tmp_path / "part"), losses, **config)
    step = part._step

    def crashing(batch, weight):
        if part.state.step == 100:
            raise RuntimeError("simulated crash")
        return step(batch, weight)

    part._step = crashing
    with pytest.raises(RuntimeError):
        part.fit()
    resumed = trainer_for(digits_split, tmp_path / "part", losses, **config)
    resumed.load_checkpoint()
    assert resumed.state.step == 98 and resumed.state.epoch == 4
    stop, plateau = resumed.features
    assert isinstance(stop, EarlyStopping) and isinstance(plateau, ReduceLROnPlateau)
    assert (stop.best_epoch, stop.wait, stop.best_loss) == (2, 2, 4.0)
    assert (plateau.best_epoch, plateau.wait, plateau.reductions) == (2, 0, 2)
    resumed_lrs = lrs_by_epoch(resumed)
    assert resumed_lrs == pytest.approx(full_lrs[4:])
    assert resumed.state.history == [{**m, "seconds": r["seconds"], "examples_per_s": r["examples_per_s"]}
                                     for m, r in zip(full.state.history, resumed.state.history)]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.features[1].state_dict() == plateau.state_dict()
    assert full.features[0].state_dict() == stop.state_dict()


def test_a_checkpoint_without_their_state_replays_the_history(digits_split, tmp_path):
    # A run trained without the features (as an old checkpoint), resumed with them: they count from its history.
    losses = [5.0, 4.0, 4.5, 4.6, 4.7]
    run = runs.create_run_dir(tmp_path / "run")
    trainer_for(digits_split, run, losses, epochs=3).fit()
    resumed = trainer_for(digits_split, run, losses, epochs=5, early_stop=2, lr_schedule="plateau", lr_patience=1)
    resumed.load_checkpoint()
    assert all(cb.best_epoch is None for cb in resumed.features)  # nothing in the checkpoint
    history = resumed.fit()
    # Epoch 3 was already one epoch without improvement, so epoch 4 is the second: stopped there.
    assert len(history) == 4
    assert resumed.features[0].best_epoch == 2


@pytest.mark.parametrize("bad,match", [
    (dict(early_stop=-1), "early_stop must be >= 0"),
    (dict(lr_factor=1.0), "lr_factor must be between 0 and 1"),
    (dict(lr_factor=0.0), "lr_factor must be between 0 and 1"),
    (dict(lr_factor=float("nan")), "lr_factor must be between 0 and 1"),
    (dict(lr_patience=0), "lr_patience must be at least 1"),
    (dict(lr_schedule="plateaux"), "lr_schedule must be constant, cosine or plateau"),
])
def test_bad_values_are_refused(bad, match):
    with pytest.raises(VaekitError, match=match):
        TrainConfig(**bad)


@pytest.mark.parametrize("config", [dict(early_stop=2), dict(lr_schedule="plateau")])
def test_without_validation_data_they_are_refused(digits_split, config):
    with pytest.raises(VaekitError, match="watches the validation -ELBO, and there is no validation data"):
        trainer_for((digits_split[0], None), **config)


def test_the_cli_offers_them(capsys):
    with pytest.raises(SystemExit):
        main(["train", "image", "-h"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--early-stop" in help_text and "--lr-factor" in help_text and "--lr-patience" in help_text
    assert "has not improved for N epochs in a row" in help_text

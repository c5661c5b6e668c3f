import json

import pytest
import torch

from vaekit import runs
from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.training import TrainConfig, Trainer, kl_weight, learning_rate, refine_config


def make_trainer(data, run=None, epochs=3, seed=0, model="seed", batch_norm=False, **config):
    train, val = data
    torch.manual_seed(seed)
    vae = build_model(model, image_shape=(1, 8, 8), latent_dim=4, **({"batch_norm": True} if batch_norm else {}))
    cfg = TrainConfig(epochs=epochs, batch_size=64, progress=False, seed=seed, **config)
    return Trainer(vae, cfg, train, val, run)


def test_loss_falls(digits_split):
    trainer = make_trainer(digits_split, epochs=4)
    untrained = trainer.evaluate(digits_split[1])["loss"]
    history = trainer.fit()
    assert history[-1]["val_loss"] < 0.7 * untrained
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_same_seed_same_numbers(digits_split):
    a = make_trainer(digits_split, epochs=2).fit()
    b = make_trainer(digits_split, epochs=2).fit()
    assert [m["val_loss"] for m in a] == [m["val_loss"] for m in b]


def _weights_equal(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("transform", ["rescale", "binarize"])
def test_resume_at_epoch_boundary_continues_exactly(digits_split, tmp_path, transform):
    train, val = digits_split
    data = (train.subset(torch.arange(len(train))), val)
    data[0].transform = transform
    full = make_trainer(data, runs.create_run_dir(tmp_path / "full"), epochs=4, model="conv")
    full.fit()
    make_trainer(data, runs.create_run_dir(tmp_path / "part"), epochs=2, model="conv").fit()
    resumed = make_trainer(data, tmp_path / "part", epochs=4, model="conv")
    resumed.load_checkpoint()
    resumed.fit()
    assert _weights_equal(full, resumed)
    assert [m["val_loss"] for m in full.state.history] == [m["val_loss"] for m in resumed.state.history]
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]


def test_resume_mid_epoch_continues_exactly(digits_split, tmp_path):
    # With the cosine schedule, so the learning rate also has to pick up where it stopped.
    schedule = dict(lr_schedule="cosine", lr_min=1e-4)
    full = make_trainer(digits_split, runs.create_run_dir(tmp_path / "full"), epochs=2, **schedule)
    full.fit()
    assert full.optimizer.param_groups[0]["lr"] < 2e-4  # the schedule really ran

    # Simulate a crash at step 30, after the mid-epoch checkpoint at step 28 (23 steps per epoch).
    part = make_trainer(digits_split, runs.create_run_dir(tmp_path / "part"), epochs=2, checkpoint_every=7,
                        **schedule)
    original_step = part._step

    def crashing_step(batch, weight):
        if part.state.step == 30:
            raise RuntimeError("simulated crash")
        return original_step(batch, weight)

    part._step = crashing_step
    with pytest.raises(RuntimeError):
        part.fit()
    resumed = make_trainer(digits_split, tmp_path / "part", epochs=2, checkpoint_every=7, **schedule)
    resumed.load_checkpoint()
    assert resumed.state.step == 28 and resumed.state.batch_in_epoch == 5
    resumed.fit()
    assert _weights_equal(full, resumed)


def _scripted_validation(trainer, losses):
    """Validation -ELBO per epoch as given (the selection logic is what is tested, not the model);
    records each epoch's weights."""
    losses, seen = iter(losses), []

    def evaluate(data, batch_size=500, shard=False):
        seen.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        loss = next(losses)
        return {"loss": loss, "reconstruction": loss, "kl": 0.0}

    trainer.evaluate = evaluate
    return seen


def _holds(state, weights):
    return all(torch.equal(state[k], weights[k]) for k in weights)


def test_keep_best_keeps_the_epoch_with_the_lowest_validation_loss(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    trainer = make_trainer(digits_split, run, epochs=4, keep_best=True)
    epochs = _scripted_validation(trainer, [5.0, 2.0, 3.0, float("nan")])
    history = trainer.fit()
    assert [m["best_epoch"] for m in history] == [1, 2, 2, 2]
    assert not _holds(epochs[1], epochs[3])  # the weights did move after the best epoch
    assert _holds(runs.load_tensors(run / runs.WEIGHTS), epochs[1])
    assert _holds(trainer.model.state_dict(), epochs[1])  # what the caller gets after fit
    checkpoint = {k[6:]: v for k, v in runs.load_tensors(run / runs.CHECKPOINT).items() if k.startswith("model.")}
    assert _holds(checkpoint, epochs[3])  # resume continues from the last step, not the best


def test_keep_best_survives_a_resume(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    first = make_trainer(digits_split, run, epochs=2, keep_best=True)
    epochs = _scripted_validation(first, [2.0, 3.0])
    first.fit()
    resumed = make_trainer(digits_split, run, epochs=3, keep_best=True)
    resumed.load_checkpoint()
    _scripted_validation(resumed, [4.0])
    history = resumed.fit()
    assert history[-1]["best_epoch"] == 1
    assert _holds(resumed.model.state_dict(), epochs[0])
    assert _holds(runs.load_tensors(run / runs.WEIGHTS), epochs[0])


def test_keep_best_without_validation_data_is_refused(digits_split):
    with pytest.raises(VaekitError, match="validation"):
        make_trainer((digits_split[0], None), keep_best=True)


class _EpochWeights:
    """Callback: a copy of the model's own (training) weights at the end of each epoch."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer, metrics):
        self.seen.append({k: v.clone() for k, v in trainer.model.state_dict().items()})


def test_average_from_keeps_the_mean_of_the_epochs_weights(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    trainer = make_trainer(digits_split, run, epochs=4, model="conv", average_from=2, batch_norm=True)
    trainer.callbacks = [weights := _EpochWeights()]
    history = trainer.fit()
    mean = {k: sum(w[k].float() for w in weights.seen[1:]) / 3 for k in weights.seen[0]}
    saved = runs.load_tensors(run / runs.WEIGHTS)
    for k, v in saved.items():
        if v.is_floating_point():
            assert torch.allclose(v, mean[k], atol=1e-6), k
        else:  # batch-norm's counter: the latest
            assert torch.equal(v, weights.seen[-1][k])
    assert all(torch.equal(v, saved[k]) for k, v in trainer.model.state_dict().items())  # the model ends on it
    assert [m.get("averaged_epochs") for m in history] == [None, 1, 2, 3]
    assert history[-1]["val_loss"] == pytest.approx(trainer.evaluate(digits_split[1])["loss"], rel=1e-6)
    # training itself went on from its own weights, not from the mean
    ckpt = runs.load_tensors(run / runs.CHECKPOINT)
    assert all(torch.equal(ckpt[f"model.{k}"], v) for k, v in weights.seen[-1].items())


def test_average_from_resumes_exactly(digits_split, tmp_path):
    full = make_trainer(digits_split, runs.create_run_dir(tmp_path / "full"), epochs=4, average_from=2)
    full.fit()
    make_trainer(digits_split, runs.create_run_dir(tmp_path / "part"), epochs=3, average_from=2).fit()
    resumed = make_trainer(digits_split, tmp_path / "part", epochs=4, average_from=2)
    resumed.load_checkpoint()
    resumed.fit()
    assert _weights_equal(full, resumed)
    assert [m["val_loss"] for m in full.state.history] == [m["val_loss"] for m in resumed.state.history]


def test_average_from_set_to_a_past_epoch_on_resume_counts_only_what_it_averaged(digits_split, tmp_path):
    # A run trained without averaging, resumed with average_from=1 (already past): the mean can only
    # hold the epochs trained from then on, and the metrics must say so.
    run = runs.create_run_dir(tmp_path / "run")
    make_trainer(digits_split, run, epochs=2).fit()
    resumed = make_trainer(digits_split, run, epochs=4, average_from=1)
    resumed.load_checkpoint()
    resumed.callbacks = [weights := _EpochWeights()]
    history = resumed.fit()
    assert [m.get("averaged_epochs") for m in history] == [None, None, 1, 2]
    saved = runs.load_tensors(run / runs.WEIGHTS)
    for k, v in saved.items():
        assert torch.allclose(v, (weights.seen[0][k] + weights.seen[1][k]) / 2, atol=1e-6), k
    # and a later resume with a later average_from drops the mean instead of keeping a stale one: epoch 5
    # has none, and epoch 6 starts a new one from its own weights alone
    later = make_trainer(digits_split, run, epochs=6, average_from=6)
    later.load_checkpoint()
    later.fit()
    assert [m.get("averaged_epochs") for m in later.state.history[-2:]] == [None, 1]
    assert all(torch.equal(v, later.model.state_dict()[k]) for k, v in runs.load_tensors(run / runs.WEIGHTS).items())


def _refiner(data, state, run=None, epochs=2):
    """A Trainer that fits only the encoder of a model holding `state` (vaekit refine's setting)."""
    torch.manual_seed(0)
    vae = build_model("seed", image_shape=(1, 8, 8), latent_dim=4)
    vae.load_state_dict(state)
    cfg = TrainConfig(epochs=epochs, batch_size=64, progress=False, trainable="encoder")
    return Trainer(vae, cfg, *data, run)


def test_encoder_refinement_moves_only_the_encoder_and_lowers_the_loss(digits_split):
    base = make_trainer(digits_split, epochs=2)
    base.fit()
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    refine = _refiner(digits_split, before, epochs=3)
    untouched_loss = refine.evaluate(digits_split[1])["loss"]
    refine.fit()
    encoder = {name for name, p in refine.model.named_parameters() if any(p is q for q in refine.params)}
    after = refine.model.state_dict()
    assert encoder and len(encoder) < len(after)
    assert all(torch.equal(before[k], after[k]) for k in after if k not in encoder)  # decoder and buffers
    assert all(not torch.equal(before[k], after[k]) for k in encoder)
    assert refine.evaluate(digits_split[1])["loss"] < untouched_loss


def test_refine_config_fits_the_plain_elbo_and_refuses_to_change_it():
    base = TrainConfig(lr_schedule="cosine", beta=4.0, free_bits=0.2, kl_warmup_steps=100, average_from=3, threads=1)
    c = refine_config(base, validated=False, free_bits=0.1)
    assert (c.trainable, c.beta, c.lr_schedule, c.kl_warmup_steps, c.average_from, c.keep_best) == (
        "encoder", 1.0, "constant", 0, 0, False)
    assert (c.free_bits, c.epochs, c.lr, c.threads) == (0.1, 2, 3e-4, 1)  # given, defaults, the source's
    for bad in ({"beta": 2.0}, {"trainable": "all"}, {"no_such_setting": 1}):
        with pytest.raises(VaekitError, match="refine cannot set"):
            refine_config(base, True, **bad)


def test_encoder_refinement_resumes_exactly(digits_split, tmp_path):
    base = make_trainer(digits_split, epochs=1)
    base.fit()
    state = base.model.state_dict()
    full = _refiner(digits_split, state, runs.create_run_dir(tmp_path / "full"), epochs=3)
    full.fit()
    _refiner(digits_split, state, runs.create_run_dir(tmp_path / "part"), epochs=1).fit()
    resumed = _refiner(digits_split, state, tmp_path / "part", epochs=3)
    resumed.load_checkpoint()
    resumed.fit()
    assert _weights_equal(full, resumed)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(digits_split, tmp_path):
    run = runs.create_run_dir(tmp_path / "run")
    trainer = make_trainer(digits_split, run, epochs=3)
    trainer.fit()  # a good checkpoint at epoch 3
    good = (run / runs.CHECKPOINT).read_bytes()
    bad = make_trainer(digits_split, run, epochs=4, lr=1e-3)
    bad.load_checkpoint()
    with torch.no_grad():
        for p in bad.model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(VaekitError, match="step 70"):
        bad.fit()
    assert (run / runs.CHECKPOINT).read_bytes() == good


def test_kl_schedules():
    assert kl_weight(0, 100, TrainConfig(kl_warmup_steps=10)) == 0.0
    assert kl_weight(5, 100, TrainConfig(kl_warmup_steps=10)) == 0.5
    assert kl_weight(50, 100, TrainConfig(kl_warmup_steps=10, beta=2.0)) == 2.0
    cyc = TrainConfig(kl_cycles=2)
    assert [kl_weight(s, 100, cyc) for s in (0, 25, 40, 50, 75)] == [0.0, 1.0, 1.0, 0.0, 1.0]
    by_epochs = TrainConfig(kl_warmup_epochs=0.5)
    assert [kl_weight(s, 100, by_epochs, steps_per_epoch=20) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    with pytest.raises(VaekitError, match="not both"):
        TrainConfig(kl_warmup_steps=10, kl_warmup_epochs=1.0)


def test_kl_warmup_in_epochs_follows_the_data(digits_split):
    # 1438 training digits in batches of 64: 23 steps an epoch, so the weight reaches 1 at step 23.
    trainer = make_trainer(digits_split, epochs=2, kl_warmup_epochs=1.0)
    weights, step = [], trainer._step
    trainer._step = lambda batch, weight: (weights.append(weight), step(batch, weight))[1]
    trainer.fit()
    assert len(weights) == 46 and weights[0] == 0.0
    assert weights[:24] == pytest.approx([s / 23 for s in range(24)]) and set(weights[23:]) == {1.0}


def test_cosine_learning_rate():
    cos = TrainConfig(lr=1e-3, lr_schedule="cosine", lr_min=1e-4)
    assert learning_rate(0, 100, cos) == pytest.approx(1e-3)
    assert learning_rate(50, 100, cos) == pytest.approx(5.5e-4)
    assert learning_rate(100, 100, cos) == pytest.approx(1e-4)
    assert learning_rate(70, 100, TrainConfig(lr=1e-3)) == 1e-3


@pytest.mark.parametrize("bad,match", [
    (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch size"), (dict(lr=-1.0), "learning rate"),
    (dict(precision="fp8"), "precision"), (dict(lr_schedule="step"), "lr_schedule"), (dict(lr_min=1.0), "lr_min"),
    (dict(checkpoint_every=-2), "checkpoint_every must be >= 0"), (dict(log_every=0), "log_every"),
    (dict(grad_clip=-1.0), "grad_clip"), (dict(grad_clip=float("nan")), "grad_clip"),
    (dict(beta=float("inf")), "beta"), (dict(free_bits=float("inf")), "free bits"),
    (dict(average_from=5, epochs=3), r"average_from \(5\) is after the last epoch \(3\)"),
])
def test_invalid_train_settings_are_refused(bad, match):
    with pytest.raises(VaekitError, match=match):
        TrainConfig(**bad)


def test_average_from_the_last_epoch_is_allowed():
    assert TrainConfig(epochs=3, average_from=3).average_from == 3

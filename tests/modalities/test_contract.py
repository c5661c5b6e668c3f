"""The modality contract: a kind of data defined only here (1-D signals) goes through every verb.

Registering it touches no file under src/: a modality subclass, a model registered for its kind, and
`vaekit.modalities.register`. If a verb still branched on the built-in kinds' names, this kind would
fall through to one of them and fail here.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit import anomaly, embedding, modalities
from vaekit.data import TensorData, TrainingData, split
from vaekit.errors import VaekitError
from vaekit.modalities import ArrayModality, Inputs
from vaekit.models import MODELS
from vaekit.models.mlp import MLPVAE

from ..test_cli import run_cli

LENGTH = 16  # samples per signal


@dataclass(frozen=True)
class SignalDataConfig:
    data: str = "sines"  # "sines" (made here, seeded) or a .npy file of (N, LENGTH) signals
    n: int = 240
    val_fraction: float = 0.2
    split_seed: int = 42


def read_signals(source: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(signals (N, LENGTH) float32, labels (N,): 0 slow, 1 fast waves)."""
    if source != "sines":
        x = np.load(source).astype(np.float32)
        return x, np.zeros(len(x), np.int64)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 2 * np.pi, LENGTH)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.sin((1 + 2 * y[:, None]) * t + phase) + 0.05 * rng.standard_normal((n, LENGTH))
    return x.astype(np.float32), y


class SignalModality(ArrayModality):
    name = "signal"
    noun = "signals"
    DataConfig = SignalDataConfig
    default_model = "signal-mlp"
    train_defaults = {"batch_size": 32}
    eval_k = 20

    def training_data(self, config, run=None) -> TrainingData:
        x, y = read_signals(config.data, config.n, config.split_seed)
        train, val = split(TensorData(torch.from_numpy(x), torch.from_numpy(y)), config.val_fraction,
                           config.split_seed)
        return self.training_arrays(train, val, config)

    def training_arrays(self, train, val, config) -> TrainingData:
        return TrainingData(train, val, {"n_features": LENGTH}, {}, f"{len(train)} + {len(val)} signals")

    def read_inputs(self, run, source, limit=None) -> Inputs:
        x, y = read_signals(source, run.data_config.n, seed=7)  # new draws, not the training signals
        return Inputs(x[:limit], y[:limit], ["slow", "fast"])


class SignalVAE(MLPVAE):
    kind = "signal"


@pytest.fixture
def signal_kind(monkeypatch):
    monkeypatch.setitem(MODELS, "signal-mlp", (SignalVAE, {"hidden": (32,), "latent_dim": 3}))
    modality = modalities.register(SignalModality())
    yield modality
    modalities.unregister("signal")


def test_a_kind_defined_outside_src_trains_resumes_and_serves_every_verb(signal_kind, tmp_path, capsys):
    train = vaekit.TrainConfig(epochs=2, progress=False, **signal_kind.train_defaults)
    run = vaekit.train(SignalDataConfig(), out=tmp_path / "sig", train=train, echo=lambda *a: None)
    assert run.modality is signal_kind and run.kind == "signal" and run.model.name == "signal-mlp"
    run = vaekit.resume(run.path, epochs=3, echo=lambda *a: None)  # trains one more epoch
    assert len((run.path / "metrics.jsonl").read_text().splitlines()) == 3

    x, _ = read_signals("sines", 10, seed=3)
    assert run.encode(x).shape == (10, 3)
    assert run.sample(4, seed=0).shape == (4, LENGTH)
    assert run.reconstruct(x).shape == (10, LENGTH)
    assert run.interpolate(x[0], x[1], steps=5).shape == (5, LENGTH)
    assert run.vary(x[0], n=3, seed=0).shape == (3, LENGTH)
    for method in anomaly.METHODS:
        if method in anomaly.PER_TOKEN:  # per token of a sentence: a kind that writes no text refuses it
            with pytest.raises(VaekitError, match="is for text runs"):
                run.score(x, method, k=4)
            continue
        assert np.isfinite(run.score(x, method, k=4)).all()

    messages = embedding.embed(run, "sines", tmp_path / "z.csv")
    assert (tmp_path / "z.csv").read_text().count("\n") == 241 and "latent means" in messages[0]
    summary = anomaly.report(run, "sines", tmp_path / "anomalies", method="reconstruction+knn", limit=50)
    assert summary["n"] == 50 and (tmp_path / "anomalies" / "scores.csv").exists()

    result = vaekit.evaluate(run, "sines", out=tmp_path / "eval", echo=lambda *a: None, limit=40)
    assert result["kind"] == "signal" and result["settings"]["k"] == signal_kind.eval_k
    assert np.isfinite(result["metrics"]["iw_nll"]["value"])

    # The command line takes the kind too: its verbs write through the modality (arrays for this kind).
    assert run_cli(capsys, "sample", run.path, "-n", "3")[0] == 0
    assert np.load(run.path / "plots" / "samples.npy").shape == (3, LENGTH)
    assert run_cli(capsys, "reconstruct", run.path, "--data", "sines", "-n", "4")[0] == 0
    assert np.load(run.path / "plots" / "reconstruct.npy").shape == (4, LENGTH)
    code, out, _ = run_cli(capsys, "interpolate", run.path, "--data", "sines", "--index", "0", "5", "--steps", "4")
    assert code == 0 and "4 steps from signal 0 to signal 5" in out
    code, _, err = run_cli(capsys, "manifold", run.path)
    assert code == 2 and "for signal runs use sample or embed" in err

    pytest.importorskip("onnxruntime")
    from vaekit.export import export_onnx, max_difference

    manifest = export_onnx(run.path)
    assert manifest["kind"] == "signal" and set(manifest["graphs"]) == {"encoder", "decoder"}
    assert max(max_difference(run.model, run.path / "onnx").values()) < 1e-4


def test_an_unknown_kind_is_refused_with_the_registered_ones_named(tmp_path):
    with pytest.raises(VaekitError, match="unknown kind 'signal'; choose one of: image, text, tabular"):
        modalities.get("signal")
    with pytest.raises(VaekitError, match="data must be one of ImageDataConfig"):
        vaekit.train(SignalDataConfig(), out=tmp_path / "x")


def test_built_in_kinds_cannot_be_replaced_or_removed():
    class Impostor(SignalModality):
        name = "image"

    with pytest.raises(VaekitError, match="already registered"):
        modalities.register(Impostor())
    with pytest.raises(VaekitError, match="built-in"):
        modalities.unregister("text")
    assert modalities.get("image") is modalities.IMAGE and Path(modalities.__file__).parent.name == "modalities"

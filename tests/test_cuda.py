"""The CUDA paths: every model trains on the GPU in each precision, a GPU run is used and loaded like
any other, resume is exact there, and data placement (on the GPU, or pinned host memory) works.

Skipped where no CUDA device is present (CI has none). `bench/gpu_check.sh` runs them on a lent GPU.
VAEKIT_TEST_DEVICE=cpu runs them on the CPU instead, to check the tests themselves on a machine
without a GPU (fp16 is CUDA-only and skipped there).
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import vaekit
from vaekit import runs
from vaekit.cli import main
from vaekit.data import TensorData
from vaekit.models import build_model
from vaekit.training import TrainConfig, Trainer, place_data

from .models import VARIANTS, build_variant, variant_id
from .test_text import SENTENCES, SMALL
from .test_train import _weights_equal

DEVICE = os.environ.get("VAEKIT_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
ON_CUDA = DEVICE is not None and DEVICE.startswith("cuda")
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no CUDA device (VAEKIT_TEST_DEVICE=cpu runs these on the CPU)")
PRECISIONS = ["fp32", "bf16"] + (["fp16"] if ON_CUDA else [])


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_every_model_trains_on_the_device(variant, precision):
    torch.manual_seed(0)
    model = build_variant(variant)
    data = TensorData(model.example_input(16))  # made on the CPU: the trainer moves batches
    config = TrainConfig(epochs=1, batch_size=16, progress=False, precision=precision, device=DEVICE)
    trainer = Trainer(model, config, data)
    assert {p.device.type for p in model.parameters()} == {torch.device(DEVICE).type}
    losses = [sum(trainer._step(data.x, 1.0)) for _ in range(40)]
    assert all(math.isfinite(v) for v in losses), losses
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses  # one fixed batch: the loss must fall
    if precision == "fp16":  # loss scaling ran: the scale is a finite power of two
        scale = trainer.scaler.get_scale()
        assert 0 < scale < math.inf and math.log2(scale).is_integer()


def test_image_run_trained_on_the_device_is_used_and_loaded_anywhere(digits, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "image", "--out", out, "--model", "conv", "--device", DEVICE, "--precision", "bf16",
            "--epochs", "2", "--no-progress"]
    assert main([str(a) for a in args]) == 0
    assert (out / "model.safetensors").exists()
    x = digits.x[:64].float() / 255
    on_device, on_cpu = vaekit.load(out, device=DEVICE), vaekit.load(out, device="cpu")
    # The same weights on two devices: the same codes and images, up to the kernels' rounding.
    np.testing.assert_allclose(on_device.encode(x), on_cpu.encode(x), rtol=1e-3, atol=1e-3)
    z = np.random.default_rng(0).standard_normal((8, on_cpu.model.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(on_device.decode(z), on_cpu.decode(z), atol=1e-3)
    assert on_device.sample(5, seed=0).shape == (5, 1, 8, 8)
    assert on_device.reconstruct(x[:3]).shape == (3, 1, 8, 8)
    assert np.isfinite(on_device.score(x[:10], k=5)).all()
    for command in (["sample", out, "-n", "4", "--out", tmp_path / "s.png"],
                    ["reconstruct", out, "--data", "digits", "--out", tmp_path / "r.png"],
                    ["embed", out, "--data", "digits", "--out", tmp_path / "z.csv"]):
        assert main([str(a) for a in command]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_resume_on_the_device_continues_exactly(digits, tmp_path):
    def trainer(run, epochs):
        torch.manual_seed(0)
        vae = build_model("image-mlp", image_shape=(1, 8, 8), latent_dim=4)
        config = TrainConfig(epochs=epochs, batch_size=64, progress=False, seed=0, device=DEVICE)
        return Trainer(vae, config, digits, None, run)

    full = trainer(runs.create_run_dir(tmp_path / "full"), 3)
    full.fit()
    trainer(runs.create_run_dir(tmp_path / "part"), 1).fit()
    resumed = trainer(tmp_path / "part", 3)
    resumed.load_checkpoint()  # restores the CUDA generator too: the same reparameterisation noise
    resumed.fit()
    assert _weights_equal(full, resumed)


@pytest.mark.parametrize("budget", [0.5, 0.0])
def test_training_data_on_the_gpu_or_in_pinned_memory(digits, budget):
    if not ON_CUDA:
        pytest.skip("data placement only differs on CUDA")
    placed = place_data(digits, torch.device(DEVICE), budget=budget)
    if budget:
        assert placed.x.device.type == "cuda"  # small data: kept on the GPU, no copy per step
    else:
        assert placed.x.device.type == "cpu" and placed.x.is_pinned()
    torch.manual_seed(0)
    model = build_model("seed", image_shape=(1, 8, 8))
    trainer = Trainer(model, TrainConfig(epochs=2, batch_size=128, progress=False, device=DEVICE), digits)
    trainer.train_data = placed
    history = trainer.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_text_run_on_the_device(tmp_path):
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "text"
    args = ["train", "text", "--data", corpus, "--out", out, "--device", DEVICE, "--precision", "bf16",
            "--kl-warmup-steps", "10", *SMALL]
    assert main([str(a) for a in args]) == 0
    run = vaekit.load(out, device=DEVICE)
    variations = run.vary("the cat sat on the mat", n=3)
    assert len(variations) == 3 and all(isinstance(s, str) for s in variations)
    assert len(run.sample(4)) == 4


def test_compiled_training_on_the_device(digits):
    torch.manual_seed(0)
    model = build_model("seed", image_shape=(1, 8, 8))
    config = TrainConfig(epochs=1, batch_size=128, progress=False, precision="bf16", device=DEVICE, compile=True)
    history = Trainer(model, config, digits).fit()
    assert math.isfinite(history[0]["train_loss"])

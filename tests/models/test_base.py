"""models/base.py: Keras' initialisers for the design document's models."""
import math

import torch
from torch import nn

from vaekit.models import build_model


def test_seed_models_start_as_keras_does():
    for name, options in (("seed", {}), ("text-seed", {"vocab_size": 60, "max_len": 9})):
        model = build_model(name, **options)
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
                assert m.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out)) + 1e-7
                assert torch.count_nonzero(m.bias) == 0
            elif isinstance(m, nn.GRU):
                w = m.weight_hh_l0  # (3 * units, units): orthogonal columns
                assert torch.allclose(w.T @ w, torch.eye(w.shape[1]), atol=1e-5)
                assert torch.count_nonzero(m.bias_ih_l0) == 0
            elif isinstance(m, nn.Embedding):
                assert m.weight.abs().max() <= 0.05


def test_default_models_keep_torch_init():
    # PyTorch's Linear init draws non-zero biases; the default conv model keeps it.
    model = build_model("conv")
    assert torch.count_nonzero(model.to_mean.bias) > 0

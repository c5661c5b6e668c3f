"""The fused BiGRU must be nn.GRU's function and gradients exactly, and text-seed must only use it to train."""
import pytest
import torch
from torch import nn

import vaekit.models.text_seed as text_seed
from vaekit.kernels.gru import FusedBiGRU, bigru, use_fused
from vaekit.models import build_model


def random_gru(input_size: int, hidden: int, dtype=torch.float64) -> nn.GRU:
    """Weights and biases large enough that every gate is far from linear."""
    gru = nn.GRU(input_size, hidden, batch_first=True, bidirectional=True).to(dtype)
    for p in gru.parameters():
        nn.init.normal_(p, std=0.6)
    return gru


@pytest.mark.parametrize("batch,steps,input_size,hidden", [
    (1, 1, 16, 5), (1, 9, 64, 16), (3, 7, 16, 3), (4, 12, 64, 7), (5, 2, 16, 32)])
def test_outputs_and_all_gradients_equal_nn_gru(batch, steps, input_size, hidden):
    torch.manual_seed(batch * 100 + steps)
    gru = random_gru(input_size, hidden)
    x = torch.randn(batch, steps, input_size, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(batch, steps, 2 * hidden, dtype=torch.float64)
    wrt = [x, *gru.parameters()]
    expected, _ = gru(x)
    got = bigru(gru, x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    for name, a, b in zip(["input"] + [n for n, _ in gru.named_parameters()],
                          torch.autograd.grad(got, wrt, upstream), torch.autograd.grad(expected, wrt, upstream)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=f"gradient of {name}")


def test_gradcheck():
    torch.manual_seed(0)
    gru = random_gru(4, 3)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in gru.parameters()]  # nn.GRU's order
    assert torch.autograd.gradcheck(FusedBiGRU.apply, (x, *weights))


def test_under_autocast_it_still_runs_in_fp32():
    torch.manual_seed(0)
    gru = random_gru(16, 8, torch.float32)
    x = torch.randn(2, 5, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = bigru(gru, x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, gru(x)[0], rtol=1e-5, atol=1e-6)


def test_only_single_layer_bidirectional_batch_first_grus_are_fused():
    x = torch.randn(2, 4, 8)
    assert use_fused(nn.GRU(8, 4, batch_first=True, bidirectional=True), x)
    assert not use_fused(nn.GRU(8, 4, batch_first=True), x)
    assert not use_fused(nn.GRU(8, 4, num_layers=2, batch_first=True, bidirectional=True), x)
    assert not use_fused(nn.GRU(8, 4, bidirectional=True), x)
    assert not use_fused(nn.GRU(8, 4, batch_first=True, bidirectional=True).eval(), x)
    with torch.no_grad():
        assert not use_fused(nn.GRU(8, 4, batch_first=True, bidirectional=True), x)


def padded_sentences(model) -> torch.Tensor:
    torch.manual_seed(1)
    x = model.example_input(6)  # (6, 7) with <eos> and padding
    x[0, 5:] = torch.tensor([3, 0])
    return x


def loss_and_gradients(model, x):
    model.zero_grad()
    torch.manual_seed(2)  # the same posterior sample on both paths
    loss = model(x).neg_elbo.mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_text_seed_training_step_is_unchanged(monkeypatch):
    torch.manual_seed(0)
    model = build_model("text-seed", vocab_size=50, max_len=9).train()
    x = padded_sentences(model)
    calls = []
    monkeypatch.setattr(text_seed, "bigru", lambda gru, h: calls.append(1) or bigru(gru, h))
    fused_loss, fused_grads = loss_and_gradients(model, x)
    assert len(calls) == 4  # two encoder and two decoder layers took the fused path
    monkeypatch.setattr(text_seed, "use_fused", lambda gru, h: False)
    loss, grads = loss_and_gradients(model, x)
    torch.testing.assert_close(fused_loss, loss, rtol=1e-5, atol=0)
    for name, grad in grads.items():
        scale = grad.abs().max().item()
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-5, atol=1e-5 * scale, msg=name)


def test_text_seed_evaluation_keeps_nn_gru(monkeypatch):
    def refuse(gru, h):
        raise AssertionError("the fused layer ran outside training")

    monkeypatch.setattr(text_seed, "bigru", refuse)
    model = build_model("text-seed", vocab_size=50, max_len=9)
    x = model.example_input(3)
    with torch.no_grad():
        model(x)  # training mode without autograd
    model.eval()
    model(x)
    model.sample(2)

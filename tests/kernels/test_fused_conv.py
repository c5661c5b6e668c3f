"""kernels/fused_conv.py: conv + bias + ReLU as one oneDNN call, the CPU training path of the conv models."""
import pytest
import torch
import torch.nn.functional as F

import vaekit.kernels.fused_conv as fused_conv
from vaekit.models import build_model
from vaekit.summary import model_summary

pytestmark = pytest.mark.skipif(not fused_conv._ops_available(), reason="this torch build has no oneDNN fused ops")


def _nodes(t: torch.Tensor) -> list[str]:
    """The type name of every autograd node behind t, one entry per node."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo += [n for n, _ in node.next_functions]
    return [type(n).__name__ for n in seen]


def _loss_and_grads(model, x, fused: bool, precision: str, monkeypatch):
    monkeypatch.setattr(fused_conv, "ENABLED", fused)
    model.zero_grad()
    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        torch.manual_seed(3)
        terms = model(x)
    loss = (terms.reconstruction + terms.kl).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()], _nodes(loss)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 30, 26)])  # the document's, and odd RGB (cropped)
def test_fused_blocks_give_the_unfused_loss_and_gradients(precision, channels_last, shape, monkeypatch):
    torch.manual_seed(0)
    model = build_model("seed", image_shape=shape, latent_dim=3)
    x = torch.rand(16, *shape)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    loss_f, grads_f, nodes_f = _loss_and_grads(model, x, True, precision, monkeypatch)
    loss_u, grads_u, nodes_u = _loss_and_grads(model, x, False, precision, monkeypatch)
    # The fused path was taken (five conv layers, one node each; the two Dense layers keep their
    # ReLU) and the other was not.
    assert nodes_f.count("_ConvBiasReLUBackward") == 5 and nodes_f.count("ReluBackward0") == 2
    assert "_ConvBiasReLUBackward" not in nodes_u and nodes_u.count("ReluBackward0") == 6
    # Forward is the same oneDNN kernel with the bias and ReLU applied inside it: the same bits.
    assert torch.equal(loss_f, loss_u)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        z = torch.randn(16, 3)
        monkeypatch.setattr(fused_conv, "ENABLED", True)
        fused_out = model.decode(z)
        monkeypatch.setattr(fused_conv, "ENABLED", False)
        assert torch.equal(fused_out, model.decode(z))
    for gf, gu in zip(grads_f, grads_u):
        if precision == "fp32":
            assert torch.allclose(gf, gu, rtol=1e-4, atol=1e-4 * gu.abs().max()), (gf - gu).abs().max()
        else:  # bf16 sums the bias gradient in another order; the rest is the same kernels
            assert F.cosine_similarity(gf.flatten(), gu.flatten(), dim=0) > 0.999


def test_batch_norm_hooks_and_tracing_take_the_ordinary_layers():
    x = torch.rand(4, 1, 28, 28)
    bn = build_model("conv", image_shape=(1, 28, 28))
    # Batch norm sits between conv and ReLU: the ReLUs stay apart, and only the three transposed
    # convolutions (conv + bias) are one call each.
    nodes = _nodes(bn(x).reconstruction.sum())
    assert nodes.count("_ConvBiasReLUBackward") == 3 and nodes.count("ReluBackward0") == 6
    seed = build_model("seed", image_shape=(1, 28, 28))
    # The summary's hooks see every conv and ReLU layer.
    summary = model_summary(seed)
    assert summary.count("(ReLU)") == 6 and summary.count("(ConvTranspose2d)") == 3
    traced = torch.jit.trace(seed.decoder, torch.rand(2, 64, 7, 7))
    assert "mkldnn" not in str(traced.graph)

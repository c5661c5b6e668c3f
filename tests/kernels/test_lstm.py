"""kernels/lstm.py: the hand-written LSTM the text decoder trains with in bf16 on AMX CPUs."""
import pytest
import torch
from torch import nn

import vaekit.models.text_rnn as text_rnn
from vaekit.kernels.lstm import lstm
from vaekit.models import build_model

from ..models.test_text_rnn import training_grads


def _case(seed=0, B=5, L=7, D=6, H=8):  # noqa: N803 (the shapes' usual names)
    torch.manual_seed(seed)
    ref = nn.LSTM(D, H, batch_first=True)
    x = torch.randn(B, L, D, requires_grad=True)
    state = (torch.randn(1, B, H, requires_grad=True), torch.randn(1, B, H, requires_grad=True))
    # Weights on every output, so a wrong gradient anywhere (outputs, final h, final c) shows.
    w_out, w_h, w_c = torch.randn(B, L, H), torch.randn(1, B, H), torch.randn(1, B, H)

    def loss(out, final):
        return (out * w_out).sum() + (final[0] * w_h).sum() + (final[1] * w_c).sum()

    return ref, x, state, loss


def test_in_fp32_it_is_nn_lstm_outputs_states_and_every_gradient():
    ref, x, state, loss = _case()
    inputs = [x, *state, *ref.parameters()]
    out, final = ref(x, state)
    expected = [out, *final, *torch.autograd.grad(loss(out, final), inputs)]
    out, final = lstm(x, state, *ref.parameters(), dtype=torch.float32)
    got = [out, *final, *torch.autograd.grad(loss(out, final), inputs)]
    assert [g.shape for g in got] == [e.shape for e in expected]
    for e, g in zip(expected, got):
        assert torch.allclose(e, g, atol=1e-5), (e - g).abs().max()


def test_in_bf16_it_stays_close_to_fp32():
    ref, x, state, loss = _case(1, B=16, L=20, D=32, H=64)
    inputs = [x, *state, *ref.parameters()]
    out, final = ref(x, state)
    exact = torch.autograd.grad(loss(out, final), inputs)
    out16, final16 = lstm(x, state, *ref.parameters())
    assert out16.dtype == torch.float32 and (out16 - out).abs().max() < 0.02
    mixed = torch.autograd.grad(loss(out16, final16), inputs)
    for e, m in zip(exact, mixed):
        assert torch.nn.functional.cosine_similarity(e.flatten(), m.flatten(), 0) > 0.999


def test_a_frozen_lstm_still_passes_gradients_to_its_inputs():
    # vaekit refine: the decoder's weights are fixed, the encoder learns through the decoder's input
    # and initial state.
    ref, x, state, loss = _case()
    ref.requires_grad_(False)
    out, final = lstm(x, state, *ref.parameters(), dtype=torch.float32)
    loss(out, final).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (x, *state))


@pytest.mark.parametrize("weight_drop", [0.0, 0.5])
def test_the_text_decoder_takes_it_on_amx_cpus_and_trains_as_in_fp32(monkeypatch, weight_drop):
    """Whatever this CPU is, the AMX path (text_rnn.run_lstm) gives the decoder gradients of fp32."""
    calls = []
    monkeypatch.setattr(text_rnn, "_amx_cpu", lambda: True)
    monkeypatch.setattr(text_rnn, "bf16_lstm", lambda *a, **k: calls.append(1) or lstm(*a, **k))
    torch.manual_seed(0)
    model = build_model("text-rnn", vocab_size=300, max_len=30, decoder_dim=520, embed_dim=32, encoder_dim=32,
                        latent_dim=4, dropout=0.0, word_dropout=0.0, weight_drop=weight_drop)
    x = torch.randint(4, 300, (8, 20))
    x[:, 15:] = 0

    exact = training_grads(model, x, "fp32")
    assert not calls  # fp32 runs nn.LSTM
    mixed = training_grads(model, x, "bf16")
    assert calls  # bf16 training on "AMX" runs the hand-written LSTM
    assert mixed.keys() == exact.keys()
    for name in exact:
        assert torch.nn.functional.cosine_similarity(exact[name], mixed[name], 0) > 0.99, name
    if weight_drop:  # the mask reached the parameter's gradient: about half of it is exactly 0
        assert 0.4 < (mixed["decoder.weight_hh_l0"] == 0).float().mean() < 0.6

"""A fused bidirectional GRU layer for CPU training, with a hand-written backward (BPTT).

It computes exactly what `nn.GRU(input_size, hidden, batch_first=True, bidirectional=True)` computes
from a zero state (Cho et al. 2014, in PyTorch's form):

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

and reads the parameters of an existing nn.GRU, so weights, initialisers and saved state dicts do
not change. Why it exists: with hidden sizes of 16-32, PyTorch's CPU GRU spends its time on
per-step operator and autograd overhead (about ten small ops per step and direction, each recorded
by autograd, and more in the backward). Here autograd sees one node per layer; the loop advances
both directions at once with six in-place ops per step forward and two per step backward, and
every weight gradient is one large matrix product after the loop. tanh is computed as
2 sigmoid(2x) - 1, the same function (rounding aside), because this CPU's tanh kernel takes four
times as long as its sigmoid.

Layout: step t of the loop holds the forward direction at time t and the reverse direction at time
T-1-t, stacked as a leading dimension of 2, so one `baddbmm` serves both directions. Inside the loop
tensors are features x batch, (2, features, T, B), and the gate rows are ordered [n; r; z; h_n]:
the input projection (rows n, r, z) and the recurrent one (rows r, z, h_n) then each write one
contiguous block of the same buffer, and every weight gradient is one `bmm` over all steps.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def use_fused(gru: nn.Module, x: Tensor) -> bool:
    """Whether `bigru` can stand in for `gru(x)` and is worth it: training on CPU with autograd on.

    Elsewhere nn.GRU stays: inference has no autograd overhead to save, cuDNN is faster on CUDA,
    and ONNX export needs the standard operator.
    """
    return (isinstance(gru, nn.GRU) and gru.training and torch.is_grad_enabled() and x.device.type == "cpu"
            and gru.num_layers == 1 and gru.bidirectional and gru.batch_first and gru.bias and gru.proj_size == 0
            and x.dim() == 3 and x.shape[1] > 0 and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export())


def bigru(gru: nn.GRU, x: Tensor) -> Tensor:
    """Output (B, T, 2H) of a 1-layer bidirectional batch_first `gru` on x (B, T, I), zero initial state;
    the forward direction first in the last dimension, as nn.GRU returns it."""
    return FusedBiGRU.apply(x, gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0,
                            gru.weight_ih_l0_reverse, gru.weight_hh_l0_reverse,
                            gru.bias_ih_l0_reverse, gru.bias_hh_l0_reverse)


class FusedBiGRU(torch.autograd.Function):
    """One autograd node for a whole bidirectional GRU layer (see the module docstring)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, w_ih_r, w_hh_r, b_ih_r, b_hh_r):
        batch, steps, _ = x.shape
        hidden = w_hh.shape[1]
        h3 = 3 * hidden
        xs = both_directions(x)  # (2, T*B, I)
        b_i, b_h = torch.stack([b_ih, b_ih_r]), torch.stack([b_hh, b_hh_r])  # (2, 3H) each
        gates = x.new_empty(2, 4 * hidden, steps * batch)  # rows [n; r; z; h_n]
        # Input part of all steps in one GEMM: rows 2 (W_in x + b_in), then W_i{r,z} x + b_i{r,z} + b_h{r,z}
        # (n is doubled for tanh(u) = 2 sigmoid(2u) - 1); the h_n rows start at b_hn.
        bias = gate_rows(b_i)  # (2, 3H)
        bias[:, hidden:] += b_h[:, :2 * hidden]
        bias[:, :hidden] *= 2
        w_in = gate_rows(torch.stack([w_ih, w_ih_r]))  # (2, 3H, I)
        w_in[:, :hidden] *= 2
        into = gates[:, :h3]  # (2, 3H, T*B)
        into.copy_(bias.unsqueeze(-1).expand_as(into))
        into.baddbmm_(w_in, xs.transpose(1, 2))
        gates[:, h3:] = b_h[:, 2 * hidden:, None]
        gates = gates.view(2, 4 * hidden, steps, batch)
        states = x.new_empty(2, hidden, steps + 1, batch)  # states[:, :, t] is the input of step t
        states[:, :, 0].zero_()
        recurrence(gates, states, torch.stack([w_hh, w_hh_r]))
        # gates now holds n, r, z and W_hn h + b_hn for every step
        ctx.save_for_backward(x, w_ih, w_hh, w_ih_r, w_hh_r)
        ctx.buffers = xs, gates, states
        return to_batch_first(states[:, :, 1:])

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, w_ih, w_hh, w_ih_r, w_hh_r = ctx.saved_tensors
        xs, gates, states = ctx.buffers
        steps, hidden = x.shape[1], w_hh.shape[1]
        h3 = 3 * hidden
        grad_h = from_batch_first(grad_out, hidden)  # (2, H, T, B)
        h_prev = states[:, :, :steps]  # (2, H, T, B)
        d = backprop_through_time(grad_h, local_derivatives(gates, h_prev), torch.stack([w_hh, w_hh_r]))
        # d (2, 5H, T*B) rows [n; r; z; h_n; direct]: rows 1-3 are d(W_h h + b_h), rows 0-2 d(W_i x + b_i)
        d_rec, d_in = d[:, hidden:4 * hidden], d[:, :h3]
        grad_w_hh = torch.bmm(d_rec, h_prev.reshape(2, hidden, -1).transpose(1, 2))  # (2, 3H, H)
        grad_b_hh = d_rec.sum(-1)  # (2, 3H)
        grad_w_ih = pytorch_rows(torch.bmm(d_in, xs))  # (2, 3H, I)
        grad_b_ih = pytorch_rows(d_in.sum(-1))  # (2, 3H)
        grad_x = None
        if ctx.needs_input_grad[0]:
            w_in = gate_rows(torch.stack([w_ih, w_ih_r]))  # (2, 3H, I)
            grad_xs = torch.bmm(d_in.transpose(1, 2), w_in).view(2, steps, x.shape[0], -1)  # (2, T, B, I)
            grad_x = grad_xs[0].index_add_(0, reverse(steps), grad_xs[1]).transpose(0, 1)  # (B, T, I)
        return (grad_x, grad_w_ih[0], grad_w_hh[0], grad_b_ih[0], grad_b_hh[0],
                grad_w_ih[1], grad_w_hh[1], grad_b_ih[1], grad_b_hh[1])


def gate_rows(w: Tensor) -> Tensor:
    """PyTorch's gate order [r; z; n] along dim 1 -> this module's [n; r; z]."""
    hidden = w.shape[1] // 3
    return torch.cat([w[:, 2 * hidden:], w[:, :2 * hidden]], 1)


def pytorch_rows(w: Tensor) -> Tensor:
    """[n; r; z] along dim 1 -> PyTorch's [r; z; n] (the inverse of gate_rows)."""
    hidden = w.shape[1] // 3
    return torch.cat([w[:, hidden:], w[:, :hidden]], 1)


def reverse(steps: int) -> Tensor:
    return torch.arange(steps - 1, -1, -1)


def both_directions(x: Tensor) -> Tensor:
    """x (B, T, I) -> (2, T*B, I): time-major, the second copy in reverse time."""
    steps = x.shape[1]
    order = torch.cat([torch.arange(steps), reverse(steps)])
    return x.transpose(0, 1)[order].view(2, -1, x.shape[-1])


def recurrence(gates: Tensor, states: Tensor, w_rec: Tensor) -> None:
    """The time loop, in place. gates (2, 4H, T, B), rows [n; r; z; h_n], holds the input parts on
    entry and n, r, z, W_hn h + b_hn on exit; states (2, H, T+1, B) receives h'.

    w_rec: (2, 3H, H). Views are taken once (unbind) so each step costs six ATen calls.
    """
    hidden = states.shape[1]
    rec = gates[:, hidden:].unbind(2)  # each (2, 3H, B): r, z, h_n
    rz = gates[:, hidden:3 * hidden].unbind(2)
    n, r, z, h_n = (gates[:, k * hidden:(k + 1) * hidden].unbind(2) for k in range(4))  # each (2, H, B)
    h = states.unbind(2)
    minus_one = gates.new_tensor(-1.0)
    for t in range(len(rec)):
        rec[t].baddbmm_(w_rec, h[t])  # (2, 3H, B) += W_h (2, 3H, H) @ h (2, H, B)
        rz[t].sigmoid_()
        n[t].addcmul_(r[t], h_n[t], value=2).sigmoid_()  # sigmoid(2 (W_in x + b_in + r h_n))
        torch.add(minus_one, n[t], alpha=2, out=n[t])  # n = tanh(...) = 2 sigmoid(2 ...) - 1
        torch.lerp(n[t], h[t], z[t], out=h[t + 1])  # (1 - z) n + z h


def local_derivatives(gates: Tensor, h_prev: Tensor) -> Tensor:
    """Everything in the backward that does not depend on the incoming gradient, for all steps at once.

    With g = dL/dh' at a step, each gradient below is g times a fixed factor:
      d(W_in x + b_in)  = g (1 - z)(1 - n^2) =: g a
      d(r pre-activation) = g a (W_hn h + b_hn) r (1 - r)
      d(z pre-activation) = g (h - n) z (1 - z)
      d(W_hn h + b_hn)    = g a r
      dh, direct path     = g z
    gates (2, 4H, T, B) rows [n; r; z; h_n], h_prev (2, H, T, B). Returns the factors, (2, 5, H, T, B).
    """
    n, r, z, h_n = gates.unflatten(1, (4, -1)).unbind(1)  # each (2, H, T, B)
    factors = n.new_empty(2, 5, *n.shape[1:])
    a = torch.mul(1 - z, torch.addcmul(n.new_tensor(1.0), n, n, value=-1), out=factors[:, 0])
    torch.mul(a * h_n, torch.addcmul(r, r, r, value=-1), out=factors[:, 1])
    torch.mul(h_prev - n, torch.addcmul(z, z, z, value=-1), out=factors[:, 2])
    torch.mul(a, r, out=factors[:, 3])
    factors[:, 4] = z
    return factors


def backprop_through_time(grad_h: Tensor, factors: Tensor, w_rec: Tensor) -> Tensor:
    """The backward loop, T-1 down to 0: two ATen calls per step.

    grad_h (2, H, T, B) holds the output gradients in loop order and accumulates, in place, the
    gradient flowing back from later steps. Returns d (2, 5H, T*B): g times each factor.
    """
    _, hidden, steps, batch = grad_h.shape
    # [W_hr; W_hz; W_hn; I]^T (2, H, 4H): dh_prev = it @ d_t[r, z, h_n, direct], the z h path included
    eye = torch.eye(hidden, dtype=w_rec.dtype).expand(2, -1, -1)
    w_back = torch.cat([w_rec, eye], 1).transpose(1, 2)
    d = torch.empty_like(factors)  # (2, 5, H, T, B)
    g = grad_h.unsqueeze(1).unbind(3)  # each (2, 1, H, B)
    g_flat = grad_h.unbind(2)  # each (2, H, B)
    f = factors.unbind(3)  # each (2, 5, H, B)
    d_t = d.unbind(3)
    d_rec = d[:, 1:].flatten(1, 2).unbind(2)  # each (2, 4H, B)
    for t in range(steps - 1, -1, -1):
        torch.mul(g[t], f[t], out=d_t[t])
        if t:
            g_flat[t - 1].baddbmm_(w_back, d_rec[t])
    return d.view(2, 5 * hidden, steps * batch)


def to_batch_first(states: Tensor) -> Tensor:
    """(2, H, T, B) in loop order -> (B, T, 2H), the forward direction first (nn.GRU's layout)."""
    _, hidden, steps, batch = states.shape
    out = states.new_empty(batch, steps, 2, hidden)
    out[:, :, 0] = states[0].permute(2, 1, 0)
    out[:, :, 1].index_copy_(1, reverse(steps), states[1].permute(2, 1, 0))
    return out.view(batch, steps, 2 * hidden)


def from_batch_first(x: Tensor, hidden: int) -> Tensor:
    """(B, T, 2H) -> (2, H, T, B) in loop order; a new tensor (the backward writes into it)."""
    batch, steps, _ = x.shape
    halves = x.reshape(batch, steps, 2, hidden)
    loop = x.new_empty(2, hidden, steps, batch)
    loop[0] = halves[:, :, 0].permute(2, 1, 0)
    loop[1].permute(2, 1, 0).index_copy_(1, reverse(steps), halves[:, :, 1])
    return loop

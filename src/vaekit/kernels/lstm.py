"""A one-layer LSTM whose matrix products run in bf16 and whose gate arithmetic runs in fp32, with its
backward pass written out: the text decoder's training path on CPUs where oneDNN's own bf16 LSTM
backward is wrong (Intel AMX, see text_rnn.run_lstm).

The recurrence is the one nn.LSTM computes (gate order i, f, g, o; Hochreiter & Schmidhuber 1997,
with the forget gate of Gers et al. 2000):
    [i, f, g, o] = [sigma, sigma, tanh, sigma](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t).
The backward pass is backpropagation through time done the way cuDNN does it: one small product per
step for the state gradient, and the weight and input gradients as three large products over all
steps at the end, where AMX runs near its peak. Autograd through a Python loop would instead add a
full-size W_hh gradient at every step.
"""
from __future__ import annotations

import torch
from torch import Tensor


class _LSTM(torch.autograd.Function):
    # Buffers are time-major, (L, B, ...), so that every step reads and writes contiguous rows.
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dtype):
        # x: (B, L, I); h0, c0: (B, H); w_ih: (4H, I); w_hh: (4H, H); b_ih, b_hh: (4H,)
        B, L, _ = x.shape
        H = w_hh.shape[1]
        xd = x.to(dtype).transpose(0, 1).reshape(L * B, -1)  # (L*B, I)
        wih, whh = w_ih.to(dtype), w_hh.to(dtype)
        # The input's share of every step in one product (AMX runs a large product near its peak).
        gates = (xd @ wih.t()).float().add_((b_ih + b_hh).float()).view(L, B, 4 * H)  # (L, B, 4H)
        fp32 = dict(dtype=torch.float32, device=x.device)
        cells = torch.empty(L, B, H, **fp32)
        tanh_cells = torch.empty(L, B, H, **fp32)
        out = torch.empty(L, B, H, **fp32)
        whh_t = whh.t()  # (H, 4H)
        h, c = h0.float(), c0.float()
        for t in range(L):
            g = gates[t].add_(h.to(dtype) @ whh_t)  # (B, 4H) pre-activations, overwritten by i, f, g, o
            g[:, :2 * H].sigmoid_()
            g[:, 2 * H:3 * H].tanh_()
            g[:, 3 * H:].sigmoid_()
            i, f, gg, o = g.chunk(4, 1)
            c = torch.mul(f, c, out=cells[t]).addcmul_(i, gg)
            h = torch.mul(o, torch.tanh(c, out=tanh_cells[t]), out=out[t])
        ctx.save_for_backward(xd, h0, c0, wih, whh, gates, cells, tanh_cells, out)
        ctx.dtype = dtype
        ctx.in_dtypes = (x.dtype, h0.dtype, c0.dtype, w_ih.dtype, w_hh.dtype, b_ih.dtype, b_hh.dtype)
        return out.transpose(0, 1), h.clone(), c.clone()

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        xd, h0, c0, wih, whh, gates, cells, tanh_cells, out = ctx.saved_tensors
        dtype = ctx.dtype
        L, B, H = out.shape
        fp32 = dict(dtype=torch.float32, device=out.device)
        dh = torch.zeros(B, H, **fp32) if d_hn is None else d_hn.float().clone()  # (B, H)
        dc = torch.zeros(B, H, **fp32) if d_cn is None else d_cn.float().clone()
        d_out = None if d_out is None else d_out.float().transpose(0, 1).contiguous()  # (L, B, H)
        d_pre = torch.empty(L, B, 4 * H, **fp32)  # gradients of the gate pre-activations
        for t in reversed(range(L)):
            if d_out is not None:
                dh += d_out[t]
            i, f, g, o = gates[t].chunk(4, 1)
            tanh_c = tanh_cells[t]
            dc.addcmul_(dh * o, 1 - tanh_c.square())
            di, df, dg, do = d_pre[t].chunk(4, 1)
            torch.mul(dc, g, out=di)
            torch.mul(dc, cells[t - 1] if t else c0.float(), out=df)
            torch.mul(dc, i, out=dg)
            torch.mul(dh, tanh_c, out=do)
            # Each gate's derivative, all four at once: a (1 - a) for the sigmoids, 1 - a^2 for the
            # tanh (per step, while the rows are in cache: over all steps at once it was slower).
            slope = gates[t] * (1 - gates[t])  # (B, 4H)
            torch.mul(g, g, out=slope[:, 2 * H:3 * H]).neg_().add_(1)
            d_pre[t].mul_(slope)
            dc.mul_(f)
            dh = (d_pre[t].to(dtype) @ whh).float()  # (B, H)
        flat = d_pre.view(L * B, 4 * H).to(dtype)  # (L*B, 4H)
        need = ctx.needs_input_grad  # a frozen decoder (vaekit refine) needs no weight gradients
        dx = (flat @ wih).view(L, B, -1).transpose(0, 1) if need[0] else None
        dw_ih = flat.t() @ xd if need[3] else None  # (4H, I)
        dw_hh = None
        if need[4]:
            h_prev = torch.cat([h0.float().unsqueeze(0), out[:-1]]).view(L * B, H).to(dtype)  # (L*B, H)
            dw_hh = flat.t() @ h_prev  # (4H, H)
        db = d_pre.view(L * B, 4 * H).sum(0) if need[5] or need[6] else None
        grads = (dx, dh, dc, dw_ih, dw_hh, db, db)
        return (*(None if g is None else g.to(d) for g, d in zip(grads, ctx.in_dtypes)), None)


def lstm(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
         dtype: torch.dtype = torch.bfloat16) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One batch-first LSTM layer: x (B, L, I), state ((1, B, H), (1, B, H)) as nn.LSTM takes them.

    Returns nn.LSTM's (out (B, L, H), (h_n, c_n)), in fp32. Matrix products in `dtype` (fp32 gives
    nn.LSTM's numbers to rounding); CPU tensors only.
    """
    out, h, c = _LSTM.apply(x, state[0][0], state[1][0], w_ih, w_hh, b_ih, b_hh, dtype)
    return out, (h.unsqueeze(0), c.unsqueeze(0))

"""Convolution + bias (+ ReLU) as one oneDNN call forward and one autograd node, for CPU training.

Why: in eager PyTorch a conv block is three kernels and three autograd nodes (convolution, bias
add, ReLU), and each of the two element-wise passes reads and writes the whole activation. For the
document's image model at batch 128 those passes and nodes cost about a quarter of a bf16 training
step on a 2-core CPU. oneDNN applies the bias and the ReLU while the convolution's output is still
in cache ("post-ops"); PyTorch exposes that through the same `mkldnn._convolution_pointwise` ops
its compiler emits. Backward is PyTorch's own: ReLU's mask, the bias gradient as a plain sum (oneDNN's
bf16 transposed-convolution backward is ~4x slower when it also reduces the bias), and
`convolution_backward` for the input and weight gradients. Forward outputs equal the unfused path's
bit for bit; gradients equal it up to the summation order of the bias gradient
(tests/kernels/test_fused_conv.py). Measured: 1.02-1.07x the seed model's bf16 MNIST training img/s
(bench/image_throughput.py, configs bf16 vs bf16-unfused). Also tried: ReLU's backward and the
bias sum as one torch.compile'd loop, +2 % in steady state for ~3 s of compiling per run: not kept.

Used only where it applies (CPU tensors in fp32 or bf16, zero padding, no groups or dilation, not
under tracing, scripting or torch.compile, no hooks on the fused layers); everything else takes the
ordinary modules, so CUDA, ONNX export and `vaekit summary` see the usual graph.
"""
from __future__ import annotations

import functools
import os

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

# VAEKIT_FUSED_CONV=0: the ordinary layers everywhere (benchmarks compare; tests switch ENABLED).
ENABLED = os.environ.get("VAEKIT_FUSED_CONV", "1") != "0"


@functools.cache
def _ops_available() -> bool:
    try:
        torch.ops.mkldnn._convolution_pointwise  # noqa: B018 (a probe: private ops may go away)
        torch.ops.mkldnn._convolution_transpose_pointwise  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return torch.backends.mkldnn.is_available()


def fused_dtype(conv: nn.Module, x: Tensor, *others: nn.Module) -> torch.dtype | None:
    """The dtype the fused path computes `conv` (then `others`, e.g. its ReLU) in, or None where it
    does not apply and the caller must run the modules as usual."""
    if not (ENABLED and x.device.type == "cpu" and x.dim() == 4 and conv.bias is not None
            and conv.groups == 1 and tuple(conv.dilation) == (1, 1) and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)):
        return None
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return None
    if any(m._forward_hooks or m._forward_pre_hooks for m in others):
        return None  # e.g. model_summary's: those layers' forward must run to be seen
    # Autocast puts convolutions in its lower-precision dtype; the fused call must do the same.
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype not in (torch.float32, torch.bfloat16) or not _ops_available():
        return None
    return dtype


class _ConvBiasReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, transposed, relu):
        attr = "relu" if relu else "none"
        if transposed:
            y = torch.ops.mkldnn._convolution_transpose_pointwise(
                x, weight, bias, padding, output_padding, stride, [1, 1], 1, attr, [], "")
        else:
            y = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, [1, 1], 1, attr, [], "")
        # ReLU's gradient mask comes from its output (y > 0 exactly where the input was).
        ctx.save_for_backward(x, weight, y if relu else None)
        ctx.conf = (stride, padding, output_padding, transposed)
        return y  # (B, C_out, H_out, W_out), x's memory format

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, weight, y = ctx.saved_tensors
        stride, padding, output_padding, transposed = ctx.conf
        if y is None:
            g, grad_bias = grad_y, grad_y.sum((0, 2, 3))  # (B, C_out, H_out, W_out), (C_out,)
        else:
            # A gradient in another memory format than y's (a Flatten's, NCHW) takes
            # element-wise ops' slow strided path: one copy is cheaper.
            grad_y = grad_y.contiguous(memory_format=memory_format(y))
            g = torch.ops.aten.threshold_backward(grad_y, y, 0)
            grad_bias = g.sum((0, 2, 3))
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            g, x, weight, None, stride, padding, [1, 1], transposed, output_padding, 1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        return grad_x, grad_w, grad_bias, None, None, None, None, None


def memory_format(t: Tensor) -> torch.memory_format:
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def conv_bias_relu(conv: nn.Conv2d | nn.ConvTranspose2d, x: Tensor, relu: bool, dtype: torch.dtype) -> Tensor:
    """relu(conv(x)) (or conv(x) with relu=False), bias included, as one oneDNN call in `dtype`.
    Call only where `fused_dtype` returned that dtype."""
    transposed = isinstance(conv, nn.ConvTranspose2d)
    output_padding = list(conv.output_padding) if transposed else [0, 0]
    return _ConvBiasReLU.apply(x.to(dtype), conv.weight.to(dtype), conv.bias.to(dtype), list(conv.stride),
                               list(conv.padding), output_padding, transposed, relu)

"""Where training runs: the device, mixed precision, and where the training data are kept."""
from __future__ import annotations

import contextlib
import ctypes
import sys

import torch

from ..data import TensorData
from ..errors import VaekitError
from .config import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VaekitError(f"device '{name}' requested but CUDA is not available here")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VaekitError(f"unknown device '{name}'") from None
    # vaekit trains and runs on CPUs and CUDA GPUs; torch parses more names (mps, xpu, meta) than
    # this build can use, and they would fail mid-run.
    if device.type not in ("cpu", "cuda"):
        raise VaekitError(f"device '{name}': vaekit runs on cpu or cuda (auto picks CUDA when available)")
    if device.type == "cpu" and device.index not in (None, 0):
        raise VaekitError(f"device '{name}': there is one CPU device; use cpu (--threads sets its threads)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise VaekitError(f"device '{name}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def autocast_context(device: torch.device, precision: str):
    """Mixed precision: bf16 on CUDA or on CPUs with native bf16, fp16 on CUDA."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise VaekitError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise VaekitError("fp16 needs a CUDA device; on CPU use --precision bf16")
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise VaekitError("this CPU has no native bf16 support; use --precision fp32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def check_runtime(config: TrainConfig) -> torch.device:
    """Fail before anything is written if the device or precision cannot work here."""
    device = resolve_device(config.device)
    autocast_context(device, config.precision)
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cpu":
        keep_freed_memory()
    return device


def keep_freed_memory() -> None:
    """Let glibc keep freed buffers of up to 32 MiB in its heap instead of unmapping them.

    By default each large activation is mmapped afresh and unmapped on free, so every training step
    page-faults its tensors in again; avoiding that made the seed model's bf16 training 1.2-1.6x
    faster on the 2-core benchmark machine (bench/RESULTS.md). The process keeps its peak heap.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library (musl): leave it alone
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD, at glibc's maximum
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: give free heap back only beyond 1 GiB


def place_data(data: TensorData, device: torch.device, budget: float = 0.5) -> TensorData:
    """Keep the training data where batches are cheapest to take.

    On CUDA: on the GPU when it fits in `budget` of the free memory (no copy per step), else in
    pinned host memory, so each batch's copy can run asynchronously (non_blocking). CPU: as is.
    """
    if device.type != "cuda":
        return data
    nbytes = data.x.numel() * data.x.element_size()
    free, _ = torch.cuda.mem_get_info(device)
    if nbytes <= budget * free:
        return data.to(device)
    return TensorData(data.x.pin_memory(), data.y, data.transform)

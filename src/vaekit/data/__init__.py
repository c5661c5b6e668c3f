"""Data as the trainer sees it: a tensor of examples (+ labels) and how to turn a batch into input.

Readers for each modality (data/images.py, ...) produce arrays; `TensorData` holds them in memory
(uint8 images stay uint8 until a batch is taken, a quarter of the float32 memory) and
`iterate_batches` walks them in a seeded order that a resumed run can replay exactly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import VaekitError

Prepare = Callable[[Tensor], Tensor]


@dataclass
class TensorData:
    x: Tensor  # (N, ...) raw examples: uint8 images, float features or token ids
    y: Tensor | None = None  # (N,) labels
    prepare: str = "none"  # name in PREPARE: how a raw batch becomes model input

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: Tensor) -> TensorData:
        return TensorData(self.x[index], None if self.y is None else self.y[index], self.prepare)

    def to(self, device: torch.device) -> TensorData:
        y = None if self.y is None else self.y.to(device)
        return TensorData(self.x.to(device), y, self.prepare)


@dataclass
class Prepared:
    """What a job (image, text, ...) hands the generic training code."""

    train: TensorData
    val: TensorData
    model_options: dict  # settings the data decides: image_shape, or vocab_size and max_len
    files: dict  # name -> bytes, written into a new run directory (e.g. tokenizer.json)
    description: str  # one line for the user: what was loaded


def rescale(batch: Tensor) -> Tensor:
    """uint8 0..255 -> float32 in [0, 1], as the document prepares images."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()


def binarize(batch: Tensor) -> Tensor:
    """Dynamic binarisation: a fresh Bernoulli draw per batch (uses the global torch RNG, which
    the trainer checkpoints, so a resumed run draws the same pixels)."""
    return torch.bernoulli(rescale(batch))


PREPARE: dict[str, Prepare] = {"none": lambda b: b, "rescale": rescale, "binarize": binarize}


def prepare_batch(data: TensorData, batch: Tensor) -> Tensor:
    return PREPARE[data.prepare](batch)


def split(data: TensorData, val_fraction: float, seed: int) -> tuple[TensorData, TensorData]:
    """Random train/validation split (the document: 20%, seed 42)."""
    if not 0 < val_fraction < 1:
        raise VaekitError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    n_val = int(round(len(data) * val_fraction))
    if n_val < 1 or n_val >= len(data):
        raise VaekitError(f"cannot split {len(data)} examples with validation fraction {val_fraction}")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(data)))
    return data.subset(order[n_val:]), data.subset(order[:n_val])


def iterate_batches(data: TensorData, batch_size: int, generator: torch.Generator | None = None,
                    start: int = 0, rank: int = 0, world: int = 1) -> Iterator[Tensor]:
    """Prepared batches; shuffled by `generator` (one permutation per call) or in order if None.

    `start` skips that many batches (resume mid-epoch). `batch_size` is the global batch: with
    world > 1 each rank takes its near-even contiguous share of every global batch
    (distributed.share_sizes). A rank whose share is empty (a last batch smaller than world) gets
    the batch's first example, which the trainer weights by 0, so every rank takes every step.
    """
    n = len(data)
    if generator is not None:
        order = torch.randperm(n, generator=generator).to(data.x.device)
    else:
        order = torch.arange(n, device=data.x.device)
    for i in range(start * batch_size, n, batch_size):
        global_idx = order[i:i + batch_size]
        idx = global_idx.tensor_split(world)[rank] if world > 1 else global_idx
        yield prepare_batch(data, data.x[idx if len(idx) else global_idx[:1]])


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)

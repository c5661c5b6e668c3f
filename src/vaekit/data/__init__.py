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
    transform: str = "none"  # name in TRANSFORMS: how a raw batch becomes model input
    lengths: Tensor | None = None  # (N,) sizes (tokens); when set, shuffled batches are bucketed by it

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: Tensor) -> TensorData:
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return TensorData(self.x[index], pick(self.y), self.transform, pick(self.lengths))

    def to(self, device: torch.device) -> TensorData:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TensorData(self.x.to(device), move(self.y), self.transform, move(self.lengths))


@dataclass
class TrainingData:
    """What a job (image, text, ...) hands the generic training code."""

    train: TensorData
    val: TensorData
    model_options: dict  # settings the data decide: image_shape, or vocab_size, max_len and the words
    files: dict  # name -> bytes, written into a new run directory (e.g. tokenizer.json)
    description: str  # one line for the user: what was loaded


def rescale(batch: Tensor) -> Tensor:
    """uint8 0..255 -> float32 in [0, 1], as the document prepares images."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()


def binarize(batch: Tensor) -> Tensor:
    """Dynamic binarisation: a fresh Bernoulli draw per batch (uses the global torch RNG, which
    the trainer checkpoints, so a resumed run draws the same pixels)."""
    return torch.bernoulli(rescale(batch))


TRANSFORMS: dict[str, Prepare] = {"none": lambda b: b, "rescale": rescale, "binarize": binarize}


def transform_batch(data: TensorData, batch: Tensor) -> Tensor:
    return TRANSFORMS[data.transform](batch)


def split(data: TensorData, val_fraction: float, seed: int) -> tuple[TensorData, TensorData]:
    """Random train/validation split (the document: 20%, seed 42)."""
    if not 0 < val_fraction < 1:
        raise VaekitError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    n_val = int(round(len(data) * val_fraction))
    if n_val < 1 or n_val >= len(data):
        raise VaekitError(f"cannot split {len(data)} examples with validation fraction {val_fraction}")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(data)))
    return data.subset(order[n_val:]), data.subset(order[:n_val])


BUCKET_POOL = 100  # batches sorted together when bucketing: similar lengths, still well mixed


def batch_order(data: TensorData, global_batch: int, generator: torch.Generator | None = None) -> list[Tensor]:
    """The epoch's global batches as index tensors, drawn from `generator` (in order if None).

    With `data.lengths`, shuffled examples are sorted by length within pools of BUCKET_POOL batches
    and the batches are shuffled again: batches of similar-length sentences waste little compute
    on padding, and every example is still seen once per epoch in a seeded, replayable order.
    """
    n = len(data)
    if generator is None:
        return list(torch.arange(n).split(global_batch))
    order = torch.randperm(n, generator=generator)
    if data.lengths is None:
        return list(order.split(global_batch))
    lengths = data.lengths.cpu()
    pools = [pool[torch.argsort(lengths[pool], stable=True)] for pool in order.split(global_batch * BUCKET_POOL)]
    batches = [b for pool in pools for b in pool.split(global_batch)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def iterate_batches(data: TensorData, batch_size: int, generator: torch.Generator | None = None,
                    start: int = 0, rank: int = 0, world: int = 1) -> Iterator[Tensor]:
    """TrainingData batches; shuffled by `generator` (its draws are one epoch's order) or in order if None.

    `start` skips that many batches (resume mid-epoch). `batch_size` is the global batch: with
    world > 1 each rank takes its near-even contiguous share of every global batch
    (distributed.share_sizes). A rank whose share is empty (a last batch smaller than world) gets
    the batch's first example, which the trainer weights by 0, so every rank takes every step.
    """
    for global_idx in batch_order(data, batch_size, generator)[start:]:
        global_idx = global_idx.to(data.x.device)
        idx = global_idx.tensor_split(world)[rank] if world > 1 else global_idx
        yield transform_batch(data, data.x[idx if len(idx) else global_idx[:1]])


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)

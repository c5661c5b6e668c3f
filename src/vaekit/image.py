"""The image job: which images to train on, how they become batches, what to draw while training."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import visual
from .data import Prepared, TensorData, split
from .errors import VaekitError

KIND = "image"
DEFAULT_MODEL = "conv"
# `vaekit anomalies` without --score: likelihoods favour simple images (Nalisnick et al. 2019); on
# one-class MNIST this scored a mean AUROC of 98.5 where the IW bound scored 89.0 (bench/RESULTS.md).
DEFAULT_SCORE = "reconstruction+knn"
# TrainConfig's own defaults are the document's (Adam, batch 128). A KL warm-up over the first epoch
# (--kl-warmup-epochs 1) was measured for the `seed` model on MNIST and not made the default: over 12
# seeds its median test -ELBO was 1.3 nats lower, but it collapsed a latent dimension as often
# (bench/RESULTS.md, 2026-12-04).
TRAIN_DEFAULTS: dict = {}
NAMED_SPLITS = ("mnist", "fashion-mnist", "digits")


@dataclass(frozen=True)
class ImageDataConfig:
    data: str = "digits"  # digits | mnist | fashion-mnist | folder | .npy/.npz | IDX file; "mnist:test"
    val_data: str | None = None  # an explicit validation set instead of a random split
    val_fraction: float = 0.2  # the document's split: 20%, seed 42
    split_seed: int = 42
    binarize: bool = False  # dynamic binarisation: fresh Bernoulli pixels every batch
    image_size: tuple[int, int] | None = None  # resize to (H, W)
    image_channels: int | None = None  # 1 (grey) or 3 (RGB); default: as the data is
    data_dir: str | None = None  # where named data sets are looked up (else $VAEKIT_DATA)
    limit: int | None = None  # use only the first N training examples (quick runs)

    def __post_init__(self):
        if self.image_size is not None:
            size = self.image_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            if len(size) != 2 or min(size) < 1 or max(size) > 4096:
                raise VaekitError(f"image size must be H W between 1 and 4096, got {self.image_size}")
            object.__setattr__(self, "image_size", size)
        if self.image_channels not in (None, 1, 3):
            raise VaekitError(f"image channels must be 1 or 3, got {self.image_channels}")
        if self.limit is not None and self.limit < 2:
            raise VaekitError(f"limit must be at least 2, got {self.limit}")


def read_images(source: str, config: ImageDataConfig, default_split: str = "train"):
    """An ImageSet for `source`, which may name a split: "mnist:test"."""
    from .data.images import load_images

    name, _, split_name = source.partition(":")
    if split_name and name in NAMED_SPLITS and not Path(source).exists():
        source, default_split = name, split_name
    if source == "digits":
        default_split = "train"  # the bundled digits have one split only
    return load_images(source, split=default_split, data_dir=config.data_dir,
                       image_size=config.image_size, channels=config.image_channels)


def to_tensor_data(images, binarize: bool) -> TensorData:
    y = None if images.y is None else torch.from_numpy(np.asarray(images.y, dtype=np.int64))
    return TensorData(torch.from_numpy(np.ascontiguousarray(images.x)), y,
                      "binarize" if binarize else "rescale")


def load_image_data(config: ImageDataConfig) -> tuple[TensorData, TensorData, tuple[int, int, int]]:
    """(train, validation, image_shape) as the config says; validation is never binarised
    stochastically differently from train (same preparation)."""
    images = read_images(config.data, config)
    data = to_tensor_data(images, config.binarize)
    if config.limit is not None:
        data = data.subset(torch.arange(min(config.limit, len(data))))
    if config.val_data:
        val_images = read_images(config.val_data, config, default_split="test")
        if val_images.x.shape[1:] != images.x.shape[1:]:
            raise VaekitError(f"validation images are {val_images.x.shape[1:]} but training images are "
                              f"{images.x.shape[1:]} (C, H, W); pass --image-size/--image-channels to match")
        train, val = data, to_tensor_data(val_images, config.binarize)
    else:
        train, val = split(data, config.val_fraction, config.split_seed)
    return train, val, tuple(int(s) for s in images.x.shape[1:])


DataConfig = ImageDataConfig


def prepare(config: ImageDataConfig, run: Path | None = None) -> Prepared:
    """The job's data for training or resuming (images need nothing from the run directory)."""
    train, val, _ = load_image_data(config)
    return prepare_arrays(train, val, config)


def prepare_arrays(train: TensorData, val: TensorData, config: ImageDataConfig) -> Prepared:
    """The job's data from image tensors (N, C, H, W) already in memory (the estimator's path)."""
    shape = tuple(int(s) for s in train.x.shape[1:])
    return Prepared(train, val, {"image_shape": shape}, {},
                    f"{len(train)} training and {len(val)} validation images of shape {shape}")


def callbacks(prepared: Prepared) -> list:
    from .training.callbacks import CollapseMonitor, TrainingCurve

    return [ImageCallback(prepared.val), TrainingCurve(), CollapseMonitor(prepared.val)]


class ImageCallback:
    """Each epoch: reconstructions and prior samples to TensorBoard and plots/."""

    def __init__(self, val: TensorData, n_show: int = 32, seed: int = 0):
        self.val_batch = val.x[:n_show]
        self.prepare = val.prepare
        self.seed = seed

    @torch.no_grad()
    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if trainer.run is None:
            return
        from .data import PREPARE

        model, plots = trainer.model, trainer.run / "plots"
        plots.mkdir(exist_ok=True)
        was_training = model.training
        model.eval()
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)  # the same z every epoch, so the grids show progress
            x = PREPARE[self.prepare](self.val_batch).to(trainer.device)
            pairs = torch.stack([x, model.reconstruct(x)], 1).flatten(0, 1)  # input, reconstruction, ...
            samples = model.sample(64)
        model.train(was_training)
        step = trainer.state.epoch
        recon_grid = visual.image_grid(pairs, nrow=16)
        sample_grid = visual.image_grid(samples, nrow=8)
        if trainer.writer:
            trainer.writer.add_image("reconstructions", recon_grid, step, dataformats="HWC")
            trainer.writer.add_image("samples", sample_grid, step, dataformats="HWC")
        scale = max(1, 280 // sample_grid.shape[0])
        visual.save_image(recon_grid, plots / "reconstructions.png", scale)
        visual.save_image(sample_grid, plots / "samples.png", scale)

"""Images (N, C, H, W): which images to train on, how they become batches, what to draw while training,
and how a trained run takes new images."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .. import visual
from ..data import TRANSFORMS, TensorData, TrainingData, split
from ..errors import VaekitError
from ..outputs import Destination
from .base import ArrayModality, Inputs, as_data

NAMED_SPLITS = ("mnist", "fashion-mnist", "digits")
NAMED_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "digits": (1, 8, 8)}  # (C, H, W)


@dataclass(frozen=True)
class ImageDataConfig:
    data: str = "digits"  # digits | mnist | fashion-mnist | folder | .npy/.npz | IDX file; "mnist:test"
    val_data: str | None = None  # an explicit validation set instead of a random split
    val_fraction: float = 0.2  # the document's split: 20%, seed 42
    split_seed: int = 42  # the seed of the random validation split (the same seed, the same split)
    binarize: bool = False  # dynamic binarisation: fresh Bernoulli pixels every batch
    image_size: tuple[int, int] | None = None  # resize to H W (one number: a square)
    image_channels: int | None = None  # 1 (grey) or 3 (RGB); default: as the data is
    data_dir: str | None = None  # where named data sets are looked up (else $VAEKIT_DATA)
    limit: int | None = None  # use only the first N training examples (quick runs)

    def __post_init__(self):
        if self.image_size is not None:
            size = self.image_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            size = size * 2 if len(size) == 1 else size  # --image-size 16: 16 x 16
            if len(size) != 2 or min(size) < 1 or max(size) > 4096:
                raise VaekitError(f"image size must be H W between 1 and 4096, got {self.image_size}")
            object.__setattr__(self, "image_size", size)
        if self.image_channels not in (None, 1, 3):
            raise VaekitError(f"image channels must be 1 or 3, got {self.image_channels}")
        if self.limit is not None and self.limit < 2:
            raise VaekitError(f"limit must be at least 2, got {self.limit}")


def read_images(source: str, config: ImageDataConfig, default_split: str = "train"):
    """An ImageSet for `source`, which may name a split: "mnist:test"."""
    from ..data.sources import load_images

    name, _, split_name = source.partition(":")
    if split_name and name in NAMED_SPLITS and not Path(source).exists():
        source, default_split = name, split_name
    if source == "digits":
        default_split = "train"  # the bundled digits have one split only
    return load_images(source, split=default_split, data_dir=config.data_dir,
                       image_size=config.image_size, channels=config.image_channels)


def _name(data: Inputs, i: int) -> str:
    """What names example i in a figure: its file without the image suffix (image folders; the CSV
    reports keep the whole name), else its index."""
    return str(PurePosixPath(data.ids[i]).with_suffix("")) if data.ids else f"#{i}"


def _check_named_shape(run, source: str) -> None:
    """Refuse a named data set whose images (as the run resizes them) do not fit the run, before reading it."""
    name = source.partition(":")[0]
    config = run.data_config
    if name not in NAMED_SHAPES or Path(source).exists() or name == config.data.partition(":")[0]:
        return  # a path, or the set the run was trained on
    channels, height, width = NAMED_SHAPES[name]
    shape = (config.image_channels or channels, *(config.image_size or (height, width)))
    expected = tuple(run.model.config.image_shape)
    if shape != expected:
        raise VaekitError(f"this run takes images of shape {expected} (C, H, W); {name}'s are {shape}")


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


class ImageCallback:
    """Each epoch: reconstructions and prior samples to TensorBoard and plots/."""

    def __init__(self, val: TensorData, n_show: int = 32, seed: int = 0):
        self.val_batch = val.x[:n_show]
        self.transform = val.transform
        self.seed = seed

    @torch.no_grad()
    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if trainer.run is None:
            return
        model, plots = trainer.model, trainer.run / "plots"
        plots.mkdir(exist_ok=True)
        was_training = model.training
        model.eval()
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)  # the same z every epoch, so the grids show progress
            x = TRANSFORMS[self.transform](self.val_batch).to(trainer.device)
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


class ImageModality(ArrayModality):
    """Images: uint8 or [0, 1] float arrays (N, C, H, W); decoded means are images in [0, 1]."""

    name = "image"
    data_names = NAMED_SPLITS
    noun = "images"
    article = "an"
    DataConfig = ImageDataConfig
    default_model = "conv"
    seed_model = "seed"
    # `vaekit anomalies` without --score: likelihoods favour simple images (Nalisnick et al. 2019). Chosen
    # on synthetic anomalies among every sum of the four distances, never on test images (issue 26,
    # bench/RESULTS.md): one-class MNIST 98.0 and Fashion-MNIST 93.7 mean AUROC, where elbo scored 90.6 and 71.3.
    default_score = "reconstruction+standardised+knn"
    # TrainConfig's own defaults are the document's (Adam, batch 128). A KL warm-up over the first epoch
    # (--kl-warmup-epochs 1) was measured for the `seed` model on MNIST and not made the default: over 12
    # seeds its median test -ELBO was 1.3 nats lower, but it collapsed a latent dimension as often
    # (bench/RESULTS.md, 2026-12-04).
    train_defaults: dict = {}
    eval_k = 1000
    plots_latent_means = True

    def training_data(self, config: ImageDataConfig, run: Path | None = None) -> TrainingData:
        """Images need nothing from the run directory."""
        train, val, _ = load_image_data(config)
        return self.training_arrays(train, val, config)

    def training_arrays(self, train: TensorData, val: TensorData, config: ImageDataConfig) -> TrainingData:
        """The trainer's data from image tensors (N, C, H, W) already in memory (the estimator's path)."""
        shape = tuple(int(s) for s in train.x.shape[1:])
        return TrainingData(train, val, {"image_shape": shape}, {},
                        f"{len(train)} training and {len(val)} validation images of shape {shape}")

    def callbacks(self, prepared: TrainingData) -> list:
        return [ImageCallback(prepared.val), *super().callbacks(prepared)]

    def read_inputs(self, run, source: str, limit: int | None = None) -> Inputs:
        _check_named_shape(run, source)  # before a download of images the run cannot take
        images = read_images(source, run.data_config, default_split="test")
        if len(images.x) == 0:
            raise VaekitError(f"{source} holds no images")
        y = None if images.y is None else images.y[:limit]
        names = None if images.names is None else images.names[:limit]
        return Inputs(images.x[:limit], y, images.classes, ids=names, id_name="file")

    def to_model(self, run, x) -> torch.Tensor:
        """Integer images (0..255) are rescaled to [0, 1]; float images must already lie in [0, 1], as
        the data the model was trained on did (a NaN or a 0..255 float would give codes and scores without
        meaning)."""
        x = torch.as_tensor(np.asarray(x))
        expected = tuple(run.model.config.image_shape)
        if x.dim() == 3 and expected[0] == 1:
            x = x.unsqueeze(1)  # (N, H, W) greyscale
        if tuple(x.shape[1:]) != expected:
            raise VaekitError(f"this run takes images of shape {expected} (C, H, W), got {tuple(x.shape[1:])}")
        if x.dtype == torch.bool:
            return x.float().to(run.device)
        if not x.is_floating_point():
            if x.numel() and (x.min() < 0 or x.max() > 255):
                raise VaekitError(f"integer images must lie in 0..255, found {x.min().item()}..{x.max().item()}")
            return (x.float() / 255.0).to(run.device)
        x = x.float()
        if not torch.isfinite(x).all():
            raise VaekitError("the images contain NaN or infinite values")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise VaekitError(f"float images must lie in [0, 1], found {x.min().item():g}..{x.max().item():g}; "
                              "scale them to [0, 1] or give them as uint8")
        return x.to(run.device)

    def eval_data(self, run, source: str, limit: int | None, seed: int):
        """Images prepared as in training; a run trained with dynamic binarisation is evaluated on one
        binarisation of the data, drawn with the evaluation's seed (the usual protocol for binarised MNIST)."""
        images = read_images(source, run.data_config, default_split="test")
        expected = tuple(run.model.config.image_shape)
        if tuple(images.x.shape[1:]) != expected:
            raise VaekitError(f"{source} holds images of shape {tuple(images.x.shape[1:])} (C, H, W) but this run "
                              f"takes {expected}; evaluate it on data like its training data")
        data = to_tensor_data(images, run.data_config.binarize)
        if limit is not None:
            data = data.subset(torch.arange(min(limit, len(data))))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            x = TRANSFORMS[data.transform](data.x)  # (N, C, H, W) float
        labels = None if data.y is None else data.y.numpy()
        return x, labels, {"settings": {"binarized": run.data_config.binarize}}

    def eval_metrics(self, run, x, bounds: dict, extra: dict) -> dict:
        return {"bits_per_dim": float(bounds["iw_nll"].mean()) / (x[0].numel() * math.log(2))}

    def show_examples(self, run, data: Inputs, order, scores, out: Path, title: str | None = None):
        """most_anomalous.png: each image above its reconstruction, captioned with its score and its index
        (or file)."""
        if len(order) == 0:
            return None
        x = run.prepare(data.x[order]).cpu()
        captions = [f"{scores[i]:.3g}\n{_name(data, i)}" for i in order]
        visual.image_table({"input": x, "reconstruction": torch.from_numpy(run.reconstruct(data.x[order]))},
                           out / "most_anomalous.png", captions, title)
        return None

    anomaly_files = ("most_anomalous.png",)
    draws_images = True

    def codec(self):
        """Bits-back coding (vaekit.compression)."""
        from ..compression import IMAGE_CODEC

        return IMAGE_CODEC

    # The README's first command, `vaekit train image` (the bundled 8x8 digits, 1,438 training images, the
    # default model): 10 epochs of batch 128 are 120 steps, which ended with KL 1.8 nats and grey blurs.
    # 1,350 steps (batch 32, 30 epochs) with the KL weighed 0.3 (beta-VAE, Higgins et al. 2017: below 1 the
    # 2-D code carries more of each image) give recognisable samples and reconstructions: validation KL
    # 4.7 nats, -ELBO 25.5 against 25.7 (2026-12-06; 8 latent dimensions reconstructed better still but lose
    # the 2-D map that `manifold` and `explore` draw exactly).
    DIGITS_DEFAULTS = {"epochs": 30, "batch_size": 32, "beta": 0.3}

    def data_defaults(self, data: ImageDataConfig, model: str) -> dict:
        """The bundled digits' first run with the default model."""
        return self.DIGITS_DEFAULTS if data.data == "digits" and model == self.default_model else {}

    def shown(self, run, x) -> np.ndarray:
        return run.prepare(x).float().cpu().numpy()

    def page_items(self, outputs) -> list[dict]:
        return [{"image": visual.png_data_url(np.asarray(im, dtype=np.float32))} for im in outputs]

    def write_samples(self, run, samples, dest: Destination) -> None:
        """A PNG grid and the images as .npy beside it."""
        out = dest.path(run.path / "plots" / "samples.png", lambda o: [o.with_suffix(".npy")])
        grid = visual.image_grid(torch.from_numpy(samples))
        visual.save_image(grid, out, max(1, 400 // grid.shape[0]))
        np.save(out.with_suffix(".npy"), samples)
        dest.echo(f"wrote {out} and {out.with_suffix('.npy')} ({len(samples)} samples, shape {samples.shape[1:]})")

    def write_reconstructions(self, run, inputs: Inputs, outputs, dest: Destination) -> None:
        """Each input above its reconstruction, in a labelled PNG table."""
        out = dest.path(run.path / "plots" / "reconstruct.png")
        x = run.prepare(inputs.x).cpu()
        visual.image_table({"input": x, "reconstruction": torch.from_numpy(outputs)}, out,
                           [_name(inputs, i) for i in range(len(x))])
        dest.echo(f"wrote {out} (each input above its reconstruction, {len(x)} images)")

    def write_interpolation(self, run, outputs, dest: Destination, what: str) -> None:
        out = dest.path(run.path / "plots" / "interpolate.png")
        steps = np.linspace(0, 1, len(outputs))
        captions = ["start"] + [f"{t:.2f}" for t in steps[1:-1]] + ["end"]
        visual.image_strip(torch.from_numpy(outputs), out, captions, what)
        dest.echo(f"wrote {out} ({what})")

    def estimator_tags(self, tags) -> None:
        tags.input_tags.three_d_array = True

    def estimator_inputs(self, estimator, X, reset: bool):
        """(N, C, H, W) uint8 images; flat rows are reshaped by the estimator's image_shape."""
        from ..data.images import _to_nchw

        x = np.asarray(X)
        if x.ndim == 2 and estimator.image_shape is not None:
            x = x.reshape(len(x), *estimator.image_shape)
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise VaekitError("images hold NaN or infinity")
        return _to_nchw(x, "X")

    def estimator_training_data(self, estimator, train, val, data_config) -> TrainingData:
        return self.training_arrays(as_data(train, "rescale"), as_data(val, "rescale"), data_config)


IMAGE = ImageModality()

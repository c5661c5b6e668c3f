"""Where images come from: the bundled digits, a named data set (data/named.py) or a path (data/images.py).

`load_images` is the one entry point the image modality reads through; it sits above both readers so
that neither imports the other.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import VaekitError
from . import named
from .images import (
    ImageSet,
    _check_channels,
    _check_size,
    _resize,
    _set_channels,
    _sibling_labels,
    read_array,
    read_folder,
    read_idx_images,
)


def load_digits() -> ImageSet:
    """scikit-learn's bundled 8x8 digits (1797 images, labels 0..9), scaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits as sklearn_digits  # heavy import, only when asked for

    bunch = sklearn_digits()
    x = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    return ImageSet(x=x, y=bunch.target.astype(np.int64), classes=[str(d) for d in range(10)],
                    source="digits")


def load_images(source: str, *, split: str = "train", data_dir: str | None = None,
                image_size: tuple[int, int] | int | None = None, channels: int | None = None,
                download: bool = True) -> ImageSet:
    """Load images from a named data set or a path.

    source: "digits", "mnist", "fashion-mnist" (names win over same-named paths; write ./mnist for
    a folder), a folder of pictures, a .npy/.npz file, or an IDX images file (its MNIST-style
    labels sibling is read when present). split ("train" or "test") applies to named data sets;
    data_dir and download are passed to them. image_size (H, W) and channels (1 or 3) reshape
    any source.
    """
    if split not in ("train", "test"):
        raise VaekitError(f"split must be 'train' or 'test', got {split!r}")
    size, channels = _check_size(image_size), _check_channels(channels)
    if source == "digits":
        if split == "test":
            raise VaekitError("the digits data set has no test split; hold out part of the training set")
        images = load_digits()
    elif source in named.DATASETS:
        images = named.load_named(source, split, data_dir=data_dir, download=download)
    else:
        images = _load_path(source, size, channels)
    x = images.x if channels is None else _set_channels(images.x, channels)
    return replace(images, x=x if size is None else _resize(x, size))


def _load_path(source: str, size, channels) -> ImageSet:
    path = Path(source).expanduser()
    if not path.exists():
        raise VaekitError(f"no such file or folder: {source} (named data sets: digits, mnist, fashion-mnist)")
    if path.is_dir():
        return read_folder(path, size, channels)
    if path.suffix.lower() in (".npy", ".npz"):
        return read_array(path)
    return read_idx_images(path, _sibling_labels(path))

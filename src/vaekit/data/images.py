"""Image data sets as uint8 arrays: IDX files, .npy/.npz arrays, folders of pictures, bundled digits.

Every reader returns an `ImageSet` whose `x` is (N, C, H, W) uint8 in 0..255, so models and
plots see one layout whatever the source. Bad input raises `VaekitError` naming the path.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import VaekitError

MAX_IMAGE_SIDE = 4096  # pictures are resized to at most this many pixels a side
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int", 0x0D: "float",
              0x0E: "double"}
_CHUNK = 1 << 20
_X_KEYS = ("x", "images", "data", "arr_0")
_Y_KEYS = ("y", "labels")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


@dataclass
class ImageSet:
    """Images with optional labels.

    x: (N, C, H, W) uint8, values 0..255.
    y: (N,) int64 labels, or None.
    classes: label names (y indexes them), or None.
    source: a short description of where the images came from ("mnist:train", a path).
    """

    x: np.ndarray
    y: np.ndarray | None
    classes: list[str] | None
    source: str
    names: list[str] | None = None  # each image's file, relative to the folder read (folders only)


# --- IDX (MNIST format) ------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not, as a uint8 array.

    Gzip is recognised by its magic bytes, not the file name. Only unsigned-byte data (type 0x08)
    is supported. The header's dimensions must account for the payload exactly.
    """
    path = Path(path)
    try:
        with _open_maybe_gzip(path) as f:
            return _parse_idx(f, path)
    except EOFError as e:
        raise VaekitError(f"{path}: the gzip data is truncated (incomplete download?): {e}") from None
    except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise VaekitError(f"{path}: cannot read IDX file: {e}") from None


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


def _parse_idx(f, path: Path) -> np.ndarray:
    magic = _read_up_to(f, 4)
    if not magic:
        raise VaekitError(f"{path}: the file is empty")
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[3] == 0:
        raise VaekitError(f"{path}: not an IDX file (bad magic number {magic.hex()}); images come as a folder of "
                          "pictures, a .npy/.npz array, an IDX file (MNIST's format) or a named set (digits, mnist, "
                          "fashion-mnist)")
    code, ndim = magic[2], magic[3]
    if code != 0x08:
        kind = _IDX_TYPES.get(code, f"unknown type 0x{code:02x}")
        raise VaekitError(f"{path}: IDX file holds {kind} values; only unsigned-byte (0x08) is supported")
    header = _read_up_to(f, 4 * ndim)
    if len(header) < 4 * ndim:
        raise VaekitError(f"{path}: IDX header is cut short ({ndim} dimensions announced)")
    dims = struct.unpack(f">{ndim}I", header)
    if 0 in dims:  # found by tests/test_fuzz.py: (0, 6, 2**30, 2**30) is empty, yet too big for numpy
        raise VaekitError(f"{path}: IDX header announces shape {dims}, which holds no data")
    expected = math.prod(dims)
    # Read at most one byte past the announced size: memory then follows the real data, not a
    # hostile header, and the extra byte reveals trailing garbage.
    payload = _read_up_to(f, expected + 1)
    if len(payload) != expected:
        raise VaekitError(f"{path}: IDX header announces shape {dims} ({expected} bytes) but the file "
                          f"holds {'more' if len(payload) > expected else len(payload)} bytes of data")
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _read_up_to(f, limit: int) -> bytearray:
    buf = bytearray()
    while len(buf) < limit:
        chunk = f.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def read_idx_images(path: str | os.PathLike, labels_path: str | os.PathLike | None = None) -> ImageSet:
    """Read an IDX images file, (N, H, W) or (N, H, W, C), and optionally its IDX labels file."""
    x = _to_nchw(read_idx(path), path)
    y = None if labels_path is None else _check_labels(read_idx(labels_path), len(x), labels_path)
    return ImageSet(x=x, y=y, classes=None, source=str(path))


def _sibling_labels(path: Path) -> Path | None:
    """The labels file MNIST-style names pair with an images file, if it exists."""
    name = path.name.replace("images", "labels").replace("idx3", "idx1")
    sibling = path.with_name(name)
    return sibling if name != path.name and sibling.is_file() else None


# --- .npy / .npz -------------------------------------------------------------------------------------


def read_array(path: str | os.PathLike) -> ImageSet:
    """Read images (and optional labels) from a .npy or .npz file.

    A .npz holds the images under one of x / images / data / arr_0 and labels under y / labels.
    Shapes (N, H, W), (N, H, W, C) and (N, C, H, W) with C in 1, 3, 4 are accepted; integer
    values must lie in 0..255 and float values in [0, 1] (scaled by 255). Pickles are never loaded.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                x, y = _pick_npz_arrays(loaded, path)
        else:
            x, y = loaded, None
    # ValueError is how numpy refuses pickled or object data, and malformed headers.
    # TokenError and SyntaxError: numpy parses the header as Python literals and lets these through.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, tokenize.TokenError, SyntaxError) as e:
        raise VaekitError(f"{path}: cannot read array file: {e}") from None
    x = _to_nchw(x, path)
    y = None if y is None else _check_labels(y, len(x), path)
    return ImageSet(x=x, y=y, classes=None, source=str(path))


def _pick_npz_arrays(npz, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    x_key = next((k for k in _X_KEYS if k in npz.files), None)
    if x_key is None:
        raise VaekitError(f"{path}: no images array found (looked for keys {', '.join(_X_KEYS)}; "
                          f"the file has {', '.join(npz.files) or 'no arrays'})")
    y_key = next((k for k in _Y_KEYS if k in npz.files), None)
    return npz[x_key], (None if y_key is None else npz[y_key])


def _to_nchw(x: np.ndarray, path) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) of any numeric dtype -> (N, C, H, W) uint8."""
    if x.dtype.kind not in "biuf":
        raise VaekitError(f"{path}: images must be numbers, not dtype {x.dtype}")
    if x.size == 0:
        raise VaekitError(f"{path}: the images array is empty (shape {x.shape})")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        hint = " (this looks like a labels array)" if x.ndim == 1 else ""
        raise VaekitError(f"{path}: images must have shape (N, H, W), (N, H, W, C) or (N, C, H, W) "
                          f"with C in 1, 3, 4; got {x.shape}{hint}")
    return np.ascontiguousarray(_to_uint8(x, path))


def _to_uint8(x: np.ndarray, path) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "b":
        return x.astype(np.uint8) * 255
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise VaekitError(f"{path}: images contain NaN or infinite values")
        if x.min() < 0 or x.max() > 1:
            raise VaekitError(f"{path}: float images must lie in [0, 1], found {x.min():g}..{x.max():g}; "
                              "scale them to [0, 1] or save them as uint8")
        return np.rint(x * 255).astype(np.uint8)
    if x.min() < 0 or x.max() > 255:
        raise VaekitError(f"{path}: integer images must lie in 0..255, found {x.min()}..{x.max()}")
    return x.astype(np.uint8)


def _check_labels(y: np.ndarray, n: int, path) -> np.ndarray:
    """Labels as (N,) int64 class indices, or a clear error."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise VaekitError(f"{path}: expected {n} labels (one per image), got an array of shape {y.shape}")
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.array_equal(y, np.round(y))):
        raise VaekitError(f"{path}: labels must be whole numbers, not dtype {y.dtype} values")
    if y.min() < 0:
        raise VaekitError(f"{path}: labels must be class indices >= 0, found {y.min()}")
    return y.astype(np.int64)


# --- folders of pictures -----------------------------------------------------------------------------


def read_folder(path: str | os.PathLike, image_size: tuple[int, int] | int | None = None,
                channels: int | None = None) -> ImageSet:
    """Read a folder of pictures (PNG, JPEG, BMP, GIF, WebP, TIFF).

    Sub-folders holding pictures are classes (sorted names -> labels 0..K-1); otherwise the folder
    is flat and unlabelled. Pictures are resized to image_size (H, W) when given, else must all
    share one size. channels None means 1 if every picture is greyscale, else 3. Transparent
    pictures are composited onto white. Other files are skipped with a warning.
    """
    root = Path(path)
    if not root.is_dir():
        raise VaekitError(f"not a folder: {root}")
    size, channels = _check_size(image_size), _check_channels(channels)
    try:
        groups, skipped = _scan_folder(root)
    except OSError as e:  # unreadable sub-folder, broken permissions
        raise VaekitError(f"{root}: cannot list the folder: {e}") from None
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} non-image file(s), e.g. {skipped[0]}", stacklevel=2)
    files = [f for _, group in groups for f in group]
    if not files:
        raise VaekitError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    pictures = _decode_all(files, root, size)
    target = channels or (1 if all(p.shape[0] == 1 for p in pictures) else 3)
    x = np.stack([_set_channels(p[None], target)[0] for p in pictures])  # (N, C, H, W)
    names = [f.relative_to(root).as_posix() for f in files]  # what scores and codes are traced back to
    if groups[0][0] is None:
        return ImageSet(x=x, y=None, classes=None, source=str(root), names=names)
    y = np.concatenate([np.full(len(group), k, dtype=np.int64) for k, (_, group) in enumerate(groups)])
    return ImageSet(x=x, y=y, classes=[name for name, _ in groups], source=str(root), names=names)


def _scan_folder(root: Path) -> tuple[list[tuple[str | None, list[Path]]], list[str]]:
    """Class groups [(name or None, files)] and the names of skipped non-image files."""
    skipped: list[str] = []
    top_images = _split_images(_sorted_entries(root, want_dirs=False), skipped)
    classes = []
    for folder in _sorted_entries(root, want_dirs=True):
        images = _split_images(_walk_files(folder), skipped)
        if images:
            classes.append((folder.name, images))
    if classes and top_images:
        raise VaekitError(f"{root}: has both class sub-folders and loose images (e.g. {top_images[0].name}); "
                          "move the loose images into a sub-folder or remove them")
    return (classes or [(None, top_images)]), skipped


def _sorted_entries(folder: Path, want_dirs: bool) -> list[Path]:
    # Hidden folders (.git, .ipynb_checkpoints) are never classes.
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() == want_dirs and not (want_dirs and p.name.startswith(".")))


def _walk_files(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath, name) for name in sorted(filenames)]
    return files


def _split_images(files: list[Path], skipped: list[str]) -> list[Path]:
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    skipped += [f.name for f in files if f.suffix.lower() not in IMAGE_EXTENSIONS]
    return images


def _decode_all(files: list[Path], root: Path, size: tuple[int, int] | None) -> list[np.ndarray]:
    pictures, first = [], None
    for file in files:
        picture = _decode(file, size)
        if first is None:
            first = (file, picture.shape[1:])
        elif picture.shape[1:] != first[1]:
            raise VaekitError(
                f"{root}: images differ in size: {first[0].name} is {_hw(first[1])} but {file.name} is "
                f"{_hw(picture.shape[1:])} (H x W); pass --image-size H W to resize them all")
        pictures.append(picture)
    return pictures


def _hw(shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def _decode(file: Path, size: tuple[int, int] | None) -> np.ndarray:
    """One picture as (1, H, W) if greyscale else (3, H, W) uint8."""
    try:
        with Image.open(file) as img:
            img = _to_l_or_rgb(ImageOps.exif_transpose(img))
            if size is not None:
                img = img.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            array = np.asarray(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise VaekitError(f"cannot read image {file}: {e}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 'L' (greyscale) or 'RGB'."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _deep_to_l(img)
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        # Fully transparent pixels hold arbitrary colours; compositing onto white shows what a viewer shows.
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
    if mode in _GREY_MODES:
        return img.convert("L")
    rgb = img.convert("RGB")  # also P, CMYK, YCbCr, HSV
    if mode in ("P", "PA"):
        array = np.asarray(rgb)
        if (array == array[..., :1]).all():  # a grey palette is a greyscale picture
            return rgb.convert("L")
    return rgb


def _deep_to_l(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit int or float greyscale -> 8-bit 'L'."""
    values = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or values.max() > 255:
        values = values / 257  # 0..65535 -> 0..255; Pillow opens 16-bit files as I;16 or I
    elif img.mode == "F" and values.max() <= 1:
        values = values * 255
    return Image.fromarray(np.rint(np.clip(values, 0, 255)).astype(np.uint8))


# --- shared reshaping ------------------------------------------------------------------------------


def _check_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise VaekitError(f"image size must be two positive integers (H, W), got {image_size!r}")
    if max(size) > MAX_IMAGE_SIDE:  # 100000 x 100000 once asked for 10 GB per picture and channel
        raise VaekitError(f"image size {size[0]} x {size[1]} is too large: at most {MAX_IMAGE_SIDE} pixels a side")
    return size


def _check_channels(channels) -> int | None:
    if channels not in (None, 1, 3):
        raise VaekitError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    return channels


def _set_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(N, C, H, W) uint8 with C in 1, 3, 4 -> (N, channels, H, W); alpha is composited onto white."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return np.repeat(x, 3, axis=1)
    values = x.astype(np.float32)
    if x.shape[1] == 4:
        alpha = values[:, 3:] / 255
        values = values[:, :3] * alpha + 255 * (1 - alpha)
    if channels == 1:  # ITU-R 601-2 luma, the weights Pillow uses for 'L'
        values = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), values, axes=([0], [1]))[:, None]
    return np.rint(values).clip(0, 255).astype(np.uint8)


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C, *size), with the filter read_folder uses so all sources agree."""
    if x.shape[2:] == size:
        return x
    out = np.empty(x.shape[:2] + size, dtype=np.uint8)
    for i, plane in np.ndindex(*x.shape[:2]):
        out[i, plane] = Image.fromarray(x[i, plane]).resize((size[1], size[0]), Image.Resampling.LANCZOS)
    return out

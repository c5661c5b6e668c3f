"""`vaekit compress RUN --data X --out FILE` and `vaekit decompress FILE --run RUN --out Y`.

X is a folder of PNG images or a .npy array for an image run, any text file for a text run.
Decompression gives back the same bytes for a text file and a .npy array, and for a folder the same
file names with the same pixel arrays and PNG modes (the PNG files themselves are written anew by
Pillow, so their bytes may differ from the originals: compression, chunks and metadata are not kept).
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import VaekitError

PNG_MODES = {"1": 1, "L": 1, "RGB": 3}  # what a folder may hold: bilevel, greyscale, RGB


def register(subparsers):
    parser = subparsers.add_parser("compress",
                                   help="compress images or a text losslessly with a run (bits-back coding)")
    parser.add_argument("run", help="a run directory (image or text; its likelihood must be discrete)")
    parser.add_argument("--data", required=True, help="image run: a folder of PNG images or a .npy array of "
                        "integer images; text run: a text file")
    parser.add_argument("--out", required=True, help="the compressed file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--chains", type=int, default=None,
                        help="independent ANS chains (default: up to 64, one per 150 examples); more run faster "
                             "in batches, each costs its initial bits once")
    return parser


def run(args) -> int:
    return compress_command(args)


def compress_command(args) -> int:
    from .. import api
    from ..compression import codec_of, compress
    from ..runs import atomic_write

    out = Path(args.out)
    refuse_existing(out, args.overwrite)
    run_ = api.load(args.run)
    data, meta, size = read_source(Path(args.data), codec_of(run_).files)
    blob = compress(run_, data, chains=args.chains, meta=meta)
    atomic_write(out, blob)
    units = len(data) if isinstance(data, bytes) else int(np.asarray(data).size)
    unit = "character (byte)" if isinstance(data, bytes) else "pixel"
    print(f"wrote {out}: {len(blob):,} bytes from {size:,} ({8 * len(blob) / max(units, 1):.4f} bits per {unit})")
    if len(blob) >= size:  # said, not refused: the file is still exact, and the user may want it anyway
        import warnings

        warnings.warn(f"{out} is not smaller than {args.data} ({size:,} bytes on disk): this run's model codes "
                      f"these data at {8 * len(blob) / max(units, 1):.2f} bits per {unit.split()[0]}; a run "
                      "trained for compression on data like them codes them in fewer (see the README's "
                      "Compression section), or keep the originals", stacklevel=2)
    return 0


def decompress_command(args) -> int:
    from .. import api
    from ..compression import decompress

    path, out = Path(args.file), Path(args.out)
    if not path.is_file():
        raise VaekitError(f"no such file: {path}")
    run_ = api.load(args.run)
    data, header = decompress(run_, path.read_bytes(), with_header=True)
    source = header.get("meta", {}).get("source")
    if source == "folder":
        write_folder(out, data, header["meta"], args.overwrite)
        print(f"wrote {len(data)} images to {out}")
        return 0
    refuse_existing(out, args.overwrite)
    from ..runs import atomic_write

    if isinstance(data, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, data, allow_pickle=False)
        atomic_write(out, buffer.getvalue())
    else:
        atomic_write(out, data if isinstance(data, bytes) else data.encode("utf-8"))
    print(f"wrote {out}")
    return 0


def refuse_existing(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise VaekitError(f"{out} is a folder; --out names the file to write")
    if out.exists() and not overwrite:
        raise VaekitError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise VaekitError(f"no such folder: {out.parent}")


# --- reading what to compress: by the files the run's codec reads -------------------------------------

def read_source(path: Path, files: str):
    """(data for run.compress, header meta or None, size in bytes on disk)."""
    if not path.exists():
        raise VaekitError(f"no such file or folder: {path}")
    return READERS[files](path)


def _read_text(path: Path):
    if path.is_dir():
        raise VaekitError(f"{path} is a folder; a text run compresses one text file")
    data = path.read_bytes()
    return data, None, len(data)


def _read_images(path: Path):
    if path.is_file():
        if path.suffix != ".npy":
            raise VaekitError(f"{path}: give an image run a folder of PNG images or a .npy array")
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise VaekitError(f"{path} is not a readable .npy array ({e})") from None
        return array, {"source": "npy"}, path.stat().st_size
    return read_png_folder(path)


def read_png_folder(folder: Path):
    """Every PNG under folder (sorted relative paths) as one (N, C, H, W) uint8 array, with the
    names and PNG modes that restore the files."""
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    others = [str(p.relative_to(folder)) for p in files if p.suffix.lower() != ".png"]
    if others:
        raise VaekitError(f"{folder} holds files that are not PNG images ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}); vaekit compresses PNG folders exactly")
    if not files:
        raise VaekitError(f"{folder} holds no PNG images")
    arrays, modes = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                mode = im.mode
                if mode not in PNG_MODES:
                    raise VaekitError(f"{p}: PNG mode {mode} is not supported (use 1, L or RGB images)")
                a = np.asarray(im)
        except OSError as e:
            raise VaekitError(f"{p} is not a readable PNG image ({e})") from None
        a = a.astype(np.uint8) * 255 if mode == "1" else a  # bilevel as black and white levels
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))  # (C, H, W)
        modes.append(mode)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise VaekitError(f"the images in {folder} differ in shape ({', '.join(map(str, sorted(shapes)[:3]))})")
    meta = {"source": "folder", "files": [str(p.relative_to(folder)) for p in files], "modes": modes}
    return np.stack(arrays), meta, sum(p.stat().st_size for p in files)


READERS = {"image files": _read_images, "a text file": _read_text}


def write_folder(out: Path, images: np.ndarray, meta: dict, overwrite: bool) -> None:
    """The images as PNG files of their original names and modes. A new folder is written under a
    temporary name and renamed whole, so a half-written folder never looks complete."""
    from PIL import Image

    from .. import runs

    if out.exists() and not out.is_dir():
        raise VaekitError(f"{out} is a file; the images decompress into a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise VaekitError(f"{out} exists and is not empty; pass --overwrite to write into it")
    names, modes = meta.get("files"), meta.get("modes")
    if not (isinstance(names, list) and isinstance(modes, list) and len(names) == len(modes) == len(images)):
        raise VaekitError("the compressed file's list of image names is damaged")
    for name in names:
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
            raise VaekitError(f"the compressed file names an unsafe path: {name!r}")
    target = out if out.is_dir() else Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for name, mode, image in zip(names, modes, images):
            pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)  # (H, W) or (H, W, C)
            picture = Image.fromarray(pixels > 127) if mode == "1" else Image.fromarray(pixels)
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            runs.atomic_write(path, buffer.getvalue())
        if target != out:
            os.replace(target, out)
    except BaseException:
        if target != out:
            shutil.rmtree(target, ignore_errors=True)
        raise

"""Named data sets (MNIST, Fashion-MNIST; text corpora in data/text.py): find the files locally, else
download and verify them.

Where files are looked for, in order:
1. the `data_dir` argument, then the `VAEKIT_DATA` folder: in `<dir>/<name>/` or `<dir>/` itself;
2. the cache, `$VAEKIT_CACHE/<name>/` (default `~/.cache/vaekit/<name>/`);
3. a download into the cache, from `$VAEKIT_MIRROR/<name>/` first (a base URL laid out like a data
   folder) and then the data set's own mirrors. Downloads are checked against known checksums
   and renamed into place only when they match, so a file in the cache is always a verified one.
Local files are the user's choice and are not checksummed, only parsed.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import VaekitError
from .images import ImageSet, read_idx_images

logger = logging.getLogger(__name__)

TIMEOUT_S = 30
MAX_DOWNLOAD_BYTES = 256 << 20  # the largest real file is ~26 MB; stop a runaway server filling the disk


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file and the checksums it must match."""

    name: str
    md5: str
    sha256: str | None = None


@dataclass(frozen=True)
class NamedDataset:
    """A named data set: its URL bases, the files of each split and class names.

    An IDX image set has (images, labels) per split; a text corpus has one file per split and no
    classes. `locate_files` finds or downloads a split's files whatever they hold.
    """

    name: str
    mirrors: tuple[str, ...]
    splits: Mapping[str, tuple[RemoteFile, ...]]
    classes: tuple[str, ...] = ()


def _idx_splits(checksums: dict[str, tuple[str, str | None]]) -> dict[str, tuple[RemoteFile, RemoteFile]]:
    def file(name: str) -> RemoteFile:
        return RemoteFile(name, *checksums[name])

    return {
        "train": (file("train-images-idx3-ubyte.gz"), file("train-labels-idx1-ubyte.gz")),
        "test": (file("t10k-images-idx3-ubyte.gz"), file("t10k-labels-idx1-ubyte.gz")),
    }


DATASETS: dict[str, NamedDataset] = {
    "mnist": NamedDataset(
        name="mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/"),
        splits=_idx_splits({
            "train-images-idx3-ubyte.gz": (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            "train-labels-idx1-ubyte.gz": (
                "d53e105ee54ea40749a09fcbcd1e9432",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            "t10k-images-idx3-ubyte.gz": (
                "9fb629c4189551a2d022fa330f9573f3",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            "t10k-labels-idx1-ubyte.gz": (
                "ec29112dd5afa0611ce80d1b7f02629c",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        }),
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": NamedDataset(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        splits=_idx_splits({  # MD5s as torchvision publishes them; no SHA-256 is published
            "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", None),
            "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", None),
            "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", None),
            "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", None),
        }),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
    ),
}


def load_named(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
               download: bool = True) -> ImageSet:
    """Load split "train" or "test" of a named data set as (N, 1, 28, 28) uint8 with labels.

    Files are looked for in data_dir, $VAEKIT_DATA and the cache, and downloaded into the cache
    (when download is true) if absent; see the module docstring.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise VaekitError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    images_path, labels_path = locate_files(spec, split, data_dir, download)
    images = read_idx_images(images_path, labels_path)
    if images.y.max() >= len(spec.classes):
        raise VaekitError(f"{labels_path}: label {images.y.max()} is out of range for {name} "
                          f"({len(spec.classes)} classes)")
    return replace(images, classes=list(spec.classes), source=f"{name}:{split}")


def locate_files(spec: NamedDataset, split: str, data_dir: str | os.PathLike | None = None,
                 download: bool = True) -> list[Path]:
    """The local paths of split's files, in spec order: found, cached, or downloaded and verified."""
    if split not in spec.splits:
        raise VaekitError(f"{spec.name} has no split {split!r}; choose one of {', '.join(spec.splits)}")
    return _locate(spec, spec.splits[split], data_dir, download)


def _locate(spec: NamedDataset, files: tuple[RemoteFile, ...], data_dir, download: bool) -> list[Path]:
    """The local paths of files: found, cached, or downloaded."""
    for folder in _local_folders(spec, data_dir):
        found = _find_files(folder, files)
        if found:
            return found
    cache = cache_dir(spec.name)
    cached = [cache / f.name if (cache / f.name).is_file() else None for f in files]
    if all(cached):
        return cached
    if not download:
        raise VaekitError(f"{spec.name}: {' / '.join(f.name for f in files)} not found locally and "
                          f"downloading is off; {_by_hand(spec)}")
    return [path or _download(spec, file, cache) for path, file in zip(cached, files, strict=True)]


def _local_folders(spec: NamedDataset, data_dir) -> Iterator[Path]:
    """<dir>/<name> and <dir> for the data folder, then for $VAEKIT_DATA (lazily: the first hit wins)."""
    for origin, root in (("data folder", data_dir), ("VAEKIT_DATA", os.environ.get("VAEKIT_DATA") or None)):
        if root is None:
            continue
        root = Path(root).expanduser()
        if not root.is_dir():
            raise VaekitError(f"{origin} {root} is not a folder")
        yield root / spec.name
        yield root


def _find_files(folder: Path, files: tuple[RemoteFile, ...]) -> list[Path] | None:
    """The files in folder (gzipped or not), None if none is there; a partial set is an error."""
    # Accept the uncompressed names too: read_idx tells gzip from plain by content.
    found = [next((folder / n for n in (f.name, f.name.removesuffix(".gz")) if (folder / n).is_file()), None)
             for f in files]
    if all(found):
        return found
    if any(found):
        have = next(f for f, path in zip(files, found) if path)
        missing = next(f for f, path in zip(files, found) if not path)
        raise VaekitError(f"{folder} holds {have.name} but not {missing.name}; put "
                          f"{' and '.join(f.name for f in files)} there")
    return None


def cache_dir(name: str) -> Path:
    """Where downloads of data set `name` go: $VAEKIT_CACHE/<name>, else ~/.cache/vaekit/<name>."""
    root = os.environ.get("VAEKIT_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vaekit"
    return Path(root).expanduser() / name


def _urls(spec: NamedDataset, file: RemoteFile) -> list[str]:
    mirror = os.environ.get("VAEKIT_MIRROR")
    urls = [f"{mirror.rstrip('/')}/{spec.name}/{file.name}"] if mirror else []
    return urls + [base.rstrip("/") + "/" + file.name for base in spec.mirrors]


def _by_hand(spec: NamedDataset) -> str:
    names = sorted({f.name for files in spec.splits.values() for f in files})
    return (f"to supply them by hand, put {', '.join(names)} in <dir>/{spec.name}/ and pass "
            "--data-dir <dir> or set VAEKIT_DATA=<dir>")


def _download(spec: NamedDataset, file: RemoteFile, folder: Path) -> Path:
    """Fetch file into folder from the first mirror that serves it with the right checksum."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VaekitError(f"cannot create the cache folder {folder}: {e}") from None
    failures = []
    for url in _urls(spec, file):
        logger.info("downloading %s", url)
        reason = _fetch(url, file, folder / file.name)
        if reason is None:
            return folder / file.name
        failures.append(f"{url} ({reason})")
    tried = "; ".join(failures) or "no mirrors configured"
    raise VaekitError(f"{spec.name}: could not download {file.name}: tried {tried}; {_by_hand(spec)}")


def _fetch(url: str, file: RemoteFile, dest: Path) -> str | None:
    """Download url to dest via a temporary file; None on success, else why it failed."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise VaekitError(f"cannot write to the cache folder {dest.parent}: {e}") from None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            md5, sha256 = _copy_hashing(response, out)
        if md5 != file.md5 or (file.sha256 and sha256 != file.sha256):
            return f"checksum mismatch (md5 {md5}, expected {file.md5})"
        os.replace(tmp, dest)  # atomic: the cache never holds a partial or unverified file
        return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} {e.reason}"
    except urllib.error.URLError as e:
        return str(e.reason)
    except (OSError, ValueError, http.client.HTTPException) as e:  # timeouts, resets, bad URLs, too large
        return str(e) or type(e).__name__
    finally:
        with suppress(OSError):  # already renamed into place, or nothing more to do
            os.unlink(tmp)


def _copy_hashing(source, out) -> tuple[str, str]:
    md5, sha256, total = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    while chunk := source.read(1 << 20):
        total += len(chunk)
        if total > MAX_DOWNLOAD_BYTES:
            raise ValueError(f"more than {MAX_DOWNLOAD_BYTES >> 20} MiB, refusing")
        md5.update(chunk)
        sha256.update(chunk)
        out.write(chunk)
    return md5.hexdigest(), sha256.hexdigest()

"""Named data sets: local lookup (data_dir, VAEKIT_DATA, cache) and verified downloads."""

import gzip
import hashlib
import socket
import struct

import numpy as np
import pytest

from vaekit.data import named
from vaekit.data.sources import load_images
from vaekit.errors import VaekitError

from ..conftest import SHARED_DATA, cached_files, needs_shared

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FILE_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

needs_shared_mnist = needs_shared("mnist")


# --- the real MNIST files, read in place -----------------------------------------------------------


@needs_shared_mnist
def test_mnist_from_data_dir_holding_the_files():
    train = named.load_named("mnist", "train", data_dir=SHARED_DATA / "mnist", download=False)
    assert train.x.shape == (60000, 1, 28, 28) and train.x.dtype == np.uint8
    assert np.bincount(train.y).tolist() == MNIST_TRAIN_COUNTS
    assert train.classes == [str(d) for d in range(10)] and train.source == "mnist:train"


@needs_shared_mnist
def test_mnist_test_split_via_vaekit_data_and_load_images(monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(SHARED_DATA))
    test = load_images("mnist", split="test", download=False)
    assert test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(test.y).tolist() == MNIST_TEST_COUNTS


# --- lookup errors ---------------------------------------------------------------------------------


def test_unknown_name_and_split():
    with pytest.raises(VaekitError, match="unknown data set"):
        named.load_named("cifar", "train")
    with pytest.raises(VaekitError, match="no split"):
        named.load_named("mnist", "valid")


def test_missing_data_dir_is_an_error(tmp_path):
    with pytest.raises(VaekitError, match="not a folder"):
        named.load_named("mnist", "train", data_dir=tmp_path / "nope")


def test_nothing_local_and_no_download(tmp_path):
    with pytest.raises(VaekitError, match="VAEKIT_DATA"):
        named.load_named("mnist", "train", data_dir=tmp_path, download=False)


def test_half_a_pair_is_named(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(VaekitError, match="not train-labels-idx1-ubyte.gz"):
        named.load_named("mnist", "train", data_dir=tmp_path, download=False)


# --- downloads from a loopback server --------------------------------------------------------------


def idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def served(loopback_server):
    """Small fake IDX files, served from <root>/fake/ by a loopback HTTP server."""
    folder = loopback_server[1] / "fake"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 4, 4)), np.arange(6) % 3,
              rng.integers(0, 256, (2, 4, 4)), np.arange(2)]
    for name, array in zip(FILE_NAMES, arrays, strict=True):
        (folder / name).write_bytes(idx_gz(array))
    return folder


@pytest.fixture
def server(served, loopback_server):
    return loopback_server[0]


def register_fake(monkeypatch, served, mirrors=(), wrong=()):
    """Put a 'fake' data set with the served files' checksums (or wrong ones) in the registry."""
    def remote(name):
        data = (served / name).read_bytes()
        md5 = "0" * 32 if name in wrong else hashlib.md5(data).hexdigest()
        return named.RemoteFile(name, md5, hashlib.sha256(data).hexdigest())

    files = [remote(name) for name in FILE_NAMES]
    splits = {"train": (files[0], files[1]), "test": (files[2], files[3])}
    spec = named.NamedDataset("fake", tuple(mirrors), splits, ("a", "b", "c"))
    monkeypatch.setitem(named.DATASETS, "fake", spec)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_download_verify_load_then_use_cache(monkeypatch, tmp_path, served, server):
    register_fake(monkeypatch, served)
    monkeypatch.setenv("VAEKIT_MIRROR", server)
    train = load_images("fake", split="train")
    assert train.x.shape == (6, 1, 4, 4) and train.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert train.classes == ["a", "b", "c"] and train.source == "fake:train"
    assert cached_files(tmp_path) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (tmp_path / "cache" / "fake" / FILE_NAMES[0]).read_bytes() == (served / FILE_NAMES[0]).read_bytes()

    monkeypatch.setenv("VAEKIT_MIRROR", closed_port_url())  # the server is no longer needed
    again = named.load_named("fake", "train")
    np.testing.assert_array_equal(again.x, train.x)


def test_mirrors_tried_in_order(monkeypatch, tmp_path, served, server):
    register_fake(monkeypatch, served, mirrors=[server + "/missing/", server + "/fake/"])
    monkeypatch.setenv("VAEKIT_MIRROR", closed_port_url())
    assert named.load_named("fake", "test").x.shape == (2, 1, 4, 4)


def test_checksum_mismatch_refused_and_nothing_cached(monkeypatch, tmp_path, served, server):
    register_fake(monkeypatch, served, wrong=[FILE_NAMES[0]])
    monkeypatch.setenv("VAEKIT_MIRROR", server)
    with pytest.raises(VaekitError, match=r"(?s)train-images-idx3-ubyte\.gz.*checksum mismatch.*VAEKIT_DATA"):
        named.load_named("fake", "train")
    assert cached_files(tmp_path) == []


def test_unreachable_server_is_a_clear_error(monkeypatch, tmp_path, served):
    register_fake(monkeypatch, served)
    url = closed_port_url()
    monkeypatch.setenv("VAEKIT_MIRROR", url)
    with pytest.raises(VaekitError, match=f"could not download .*{url}/fake/train-images.*VAEKIT_DATA"):
        named.load_named("fake", "train")
    assert cached_files(tmp_path) == []


def test_local_files_win_over_download(monkeypatch, tmp_path, served):
    register_fake(monkeypatch, served)
    monkeypatch.setenv("VAEKIT_MIRROR", closed_port_url())
    monkeypatch.setenv("VAEKIT_DATA", str(served.parent))  # holds fake/<files>
    assert named.load_named("fake", "test").y.tolist() == [0, 1]
    assert cached_files(tmp_path) == []

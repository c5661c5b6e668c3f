"""Shared fixtures: tiny real data (scikit-learn's digits), the shared data folder, a loopback server."""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import TensorData, split

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """../shared/data beside the repo (or $VAEKIT_SHARED_DATA), if present."""
    path = Path(os.environ.get("VAEKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
    return path if path.is_dir() else None


SHARED_DATA = shared_data() or REPO.parent / "shared" / "data"


def needs_shared(name: str):
    """Skip unless ../shared/data/<name> is there (MNIST, PTB, ...)."""
    return pytest.mark.skipif(not (SHARED_DATA / name).is_dir(), reason=f"shared {name} not found in {SHARED_DATA}")


def sentence_file(tmp_path_factory, sentences: list[str]) -> Path:
    """A one-sentence-per-line UTF-8 file of `sentences` in a fresh temporary folder."""
    path = tmp_path_factory.mktemp("text") / "sentences.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


def cached_files(tmp_path: Path) -> list[str]:
    """Names of the files in <tmp>/cache (where tests point VAEKIT_CACHE)."""
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


@pytest.fixture
def loopback_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving <tmp>/served (download tests): yields (url, folder)."""
    served = tmp_path / "served"
    served.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def digits() -> TensorData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.round(d.images * 255 / 16).astype(np.uint8)[:, None])  # (1797, 1, 8, 8)
    return TensorData(x, torch.from_numpy(d.target), "rescale")


@pytest.fixture(scope="session")
def digits_split(digits):
    return split(digits, 0.2, 42)


@pytest.fixture(autouse=True)
def _quiet_cwd(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, so default outputs (runs/...) never collide."""
    monkeypatch.chdir(tmp_path)

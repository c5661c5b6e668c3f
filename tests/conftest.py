"""Shared fixtures: tiny real data (scikit-learn's digits) and the shared data folder."""
from __future__ import annotations

import os
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

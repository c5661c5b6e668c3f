"""Shared by the data tests: none of them may see the user's environment."""
import pytest


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test reads the user's data folders or cache, or reaches a real mirror."""
    for var in ("VAEKIT_DATA", "VAEKIT_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))

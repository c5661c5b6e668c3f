"""The model registry: a plain dict from name to (class, default config values).

A new model is one file that defines a `VAE` subclass with a frozen `Config` dataclass, and one
`@register(...)` line. The contract tests in tests/models run over every entry.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..errors import VaekitError
from .base import VAE

MODELS: dict[str, tuple[type[VAE], dict[str, Any]]] = {}


def register(name: str, **defaults: Any):
    """Class decorator: make `cls` buildable as `name`, with `defaults` over its Config's own."""

    def wrap(cls: type[VAE]) -> type[VAE]:
        MODELS[name] = (cls, defaults)
        return cls

    return wrap


def build_model(name: str, from_data: dict | None = None, **overrides: Any) -> VAE:
    """A fresh model `name`; `overrides` are Config fields (e.g. latent_dim=8). `from_data`: settings
    the data decide (TrainingData.model_options): those that are Config fields set them, and the model
    sees them all through `VAE.set_data_options` (text-minilm reads the vocabulary's words there)."""
    if name not in MODELS:
        raise VaekitError(f"unknown model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    cls, defaults = MODELS[name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    overrides = {**{k: v for k, v in (from_data or {}).items() if k in fields}, **overrides}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise VaekitError(f"model '{name}' has no option {', '.join(unknown)}")
    config = cls.Config(**{**defaults, **overrides})
    check_size(cls, config, name)
    model = cls(config)
    model.name = name
    model.set_data_options(from_data or {})
    return model


MAX_PARAMETERS = 1_000_000_000  # 4 GB of fp32 weights (+8 GB of Adam state): far beyond a vaekit model


def check_size(cls: type[VAE], config, name: str) -> None:
    """Refuse a config whose model would not fit in memory, before allocating anything.

    Each size may be plausible on its own yet multiply out to billions of weights (a 4096x4096
    image into a dense layer); a config.json from elsewhere must not be able to exhaust memory.
    The model is built on the meta device, which records shapes and allocates no storage.
    """
    with torch.device("meta"):
        n = sum(p.numel() for p in cls(config).parameters())
    if n > MAX_PARAMETERS:
        raise VaekitError(f"model '{name}' with these settings would have {n:,} parameters "
                          f"({4 * n / 2**30:.0f} GiB of fp32 weights); vaekit refuses more than {MAX_PARAMETERS:,}")


def model_names(kind: str | None = None) -> list[str]:
    return sorted(n for n, (cls, _) in MODELS.items() if kind is None or cls.kind == kind)


# Importing the model files fills the registry (defining classes only; no work at import time).
from . import conv, mlp, pixel, text_minilm, text_rnn, text_seed  # noqa: E402,F401

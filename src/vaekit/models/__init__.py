"""The model registry: a plain dict from name to (class, default config values).

A new model is one file that defines a `VAE` subclass with a frozen `Config` dataclass, and one
`@register(...)` line. The contract tests in tests/models run over every entry.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import VaekitError
from .base import VAE

MODELS: dict[str, tuple[type[VAE], dict[str, Any]]] = {}


def register(name: str, **defaults: Any):
    """Class decorator: make `cls` buildable as `name`, with `defaults` over its Config's own."""

    def wrap(cls: type[VAE]) -> type[VAE]:
        MODELS[name] = (cls, defaults)
        return cls

    return wrap


def build_model(name: str, **overrides: Any) -> VAE:
    """A fresh model `name`; `overrides` are Config fields (e.g. latent_dim=8)."""
    if name not in MODELS:
        raise VaekitError(f"unknown model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    cls, defaults = MODELS[name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise VaekitError(f"model '{name}' has no option {', '.join(unknown)}")
    config = cls.Config(**{**defaults, **overrides})
    model = cls(config)
    model.name = name
    return model


def model_names(kind: str | None = None) -> list[str]:
    return sorted(n for n, (cls, _) in MODELS.items() if kind is None or cls.kind == kind)


# Importing the model files fills the registry (defining classes only; no work at import time).
from . import conv, mlp, text_rnn, text_seed  # noqa: E402,F401

"""Kinds of data as objects: `get("image")`, `get("text")`, `get("tabular")`, and `register` for new ones.

Each built-in kind is one module here (image.py, text.py, tabular.py) holding its data config, its
readers' glue and one `Modality` instance; base.py is the protocol. Nothing outside this package
compares a kind's name: it asks the modality.
"""
from __future__ import annotations

from ..errors import VaekitError
from .base import ArrayModality, Inputs, Modality, as_data, model_ready
from .image import IMAGE, ImageDataConfig
from .tabular import TABULAR, TabularDataConfig
from .text import TEXT, TextDataConfig

_REGISTRY: dict[str, Modality] = {}


def register(modality: Modality) -> Modality:
    """Make a kind of data known to vaekit (train, load, the verbs); returns it. A name registered
    twice is refused, so a typo cannot replace a built-in kind."""
    if not isinstance(modality, Modality) or not modality.name:
        raise VaekitError(f"a modality is a named vaekit.modalities.Modality, got {modality!r}")
    if _REGISTRY.get(modality.name, modality) is not modality:
        raise VaekitError(f"a modality named {modality.name!r} is already registered")
    _REGISTRY[modality.name] = modality
    return modality


def unregister(name: str) -> None:
    """Forget a kind registered by `register` (tests, plug-ins); the built-in kinds stay."""
    if name in BUILT_IN:
        raise VaekitError(f"{name!r} is a built-in kind of data and cannot be removed")
    _REGISTRY.pop(name, None)


def get(kind) -> Modality:
    """The modality of `kind` (its name, e.g. config.json's "kind"); a clear error for an unknown one."""
    if isinstance(kind, Modality):
        return kind
    if kind not in _REGISTRY:
        raise VaekitError(f"unknown kind {kind!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[kind]


def of_model(model) -> Modality:
    """The modality of a model's kind; a model of no registered kind (a bare model in a test or a
    notebook) gets the protocol's defaults, which assume nothing of its data beyond a tensor."""
    return _REGISTRY.get(model.kind) or _GENERIC


def names() -> list[str]:
    """The registered kinds, built-ins first."""
    return list(_REGISTRY)


def for_data(config) -> Modality:
    """The modality whose data config `config` is (train() is given one and picks the kind by it)."""
    for modality in _REGISTRY.values():
        if isinstance(config, modality.DataConfig):
            return modality
    known = ", ".join(m.DataConfig.__name__ for m in _REGISTRY.values())
    raise VaekitError(f"data must be one of {known}, got {type(config).__name__}")


_GENERIC = Modality()
BUILT_IN = ("image", "text", "tabular")
for _modality in (IMAGE, TEXT, TABULAR):
    register(_modality)

__all__ = ["ArrayModality", "IMAGE", "ImageDataConfig", "Inputs", "Modality", "TABULAR", "TEXT", "TabularDataConfig",
           "TextDataConfig", "as_data", "for_data", "get", "model_ready", "names", "of_model", "register", "unregister"]

"""Config JSON checked against the config dataclasses' own type hints, before anything is built.

A run directory may come from anywhere, so its config.json is untrusted input: unknown keys,
wrong types (a string where a number belongs, a float batch size), non-finite numbers and
absurdly long lists or strings are refused here with one clear message. The ranges that make
sense (latent_dim >= 1, a model small enough to fit in memory) are the dataclasses' own checks.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from .errors import VaekitError

MAX_INT = 2**63 - 1  # what torch and numpy take as a seed or a size
MAX_ITEMS = 256  # no config tuple (layer sizes, image shape) is near this long
MAX_STR = 4096  # paths and names


def check_fields(cls, values: Any, what: str) -> dict:
    """`values` (parsed JSON) as keyword arguments for the dataclass `cls`, or a VaekitError.

    Lists become tuples where the field is a tuple; every value must have its field's type.
    """
    if not isinstance(values, dict):
        raise VaekitError(f"{what} must be a JSON object, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    _refuse_unknown(values, {f.name for f in dataclasses.fields(cls)}, what)
    return {key: _check(value, hints[key], f"{what} '{key}'") for key, value in values.items()}


def check_keys(values: Any, types: dict[str, type], what: str) -> None:
    """Refuse a JSON object whose keys are not all in `types` or whose values are not of their key's
    type (str, int, or dict: a JSON object, checked no deeper)."""
    if not isinstance(values, dict):
        raise VaekitError(f"{what} must be a JSON object, got {type(values).__name__}")
    _refuse_unknown(values, set(types), what)
    for key, value in values.items():
        if types[key] is dict:
            if not isinstance(value, dict):
                raise VaekitError(f"{what} '{key}' must be a JSON object, got {_show(value)}")
        else:
            _check(value, types[key], f"{what} '{key}'")


def _refuse_unknown(values: dict, names: set, what: str) -> None:
    unknown = sorted(map(str, set(values) - names))
    if unknown:
        raise VaekitError(f"{what} has unknown keys: {', '.join(k if k.isprintable() else repr(k) for k in unknown)}")


def _check(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # our configs use `X | None` only
        return _check(value, inner, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) > MAX_ITEMS:
            raise VaekitError(f"{where} must be a list (of at most {MAX_ITEMS} items), got {_show(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise VaekitError(f"{where} must have {len(args)} items, got {len(value)}")
        return tuple(_check(v, a, where) for v, a in zip(value, args))
    if hint is bool:
        if not isinstance(value, bool):
            raise VaekitError(f"{where} must be true or false, got {_show(value)}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INT:
            raise VaekitError(f"{where} must be a whole number, got {_show(value)}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise VaekitError(f"{where} must be a finite number, got {_show(value)}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str) or len(value) > MAX_STR:
            raise VaekitError(f"{where} must be a string (of at most {MAX_STR} characters), got {_show(value)}")
    else:  # a hint this checker does not know: the dataclass's own checks decide
        pass
    return value


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

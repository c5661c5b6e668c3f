"""How each kind of data appears on the explorer's page: inputs and decoded outputs as JSON items.

An item is {"image": "data:image/png;base64,..."}, {"text": "..."} or {"row": [numbers]} (the page
draws a table row under the run's column names). This is the explorer's only per-kind code, one
dict keyed by the run's kind: it can move into the modality files (modalities/) as they appear.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import VaekitError


def png_data_url(image: np.ndarray) -> str:
    """(C, H, W) floats in [0, 1] -> a PNG data URL (the page scales it up, pixelated)."""
    from PIL import Image

    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)  # (C, H, W)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)  # (H, W) or (H, W, C)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # speed over a few bytes
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class KindView:
    """as_shown: inputs as the run reads them -> what to draw (images in [0, 1], sentences, raw rows);
    items: a batch of those (or of decoded outputs) -> JSON items."""

    as_shown: Callable
    items: Callable


def _image_items(images) -> list[dict]:
    return [{"image": png_data_url(np.asarray(im, dtype=np.float32))} for im in images]


def _text_items(sentences) -> list[dict]:
    return [{"text": str(s)} for s in sentences]


def _row_items(rows) -> list[dict]:
    return [{"row": [float(f"{v:.5g}") for v in row]} for row in np.asarray(rows, dtype=np.float64)]


# ---- per kind: the one place that knows image / text / tabular (move into modalities/) ----------
KIND_VIEWS = {
    "image": KindView(as_shown=lambda run, x: run.prepare(x).float().cpu().numpy(), items=_image_items),
    "text": KindView(as_shown=lambda run, x: list(x), items=_text_items),
    "tabular": KindView(as_shown=lambda run, x: np.asarray(x, dtype=np.float64), items=_row_items),
}


def kind_view(kind: str) -> KindView:
    if kind not in KIND_VIEWS:
        raise VaekitError(f"explore shows image, text and tabular runs, not {kind!r} runs")
    return KIND_VIEWS[kind]

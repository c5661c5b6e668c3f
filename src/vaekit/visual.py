"""Plots: the training curve, image grids, the latent scatter and the decoded manifold.

matplotlib is imported inside each function (with the non-interactive Agg backend) so that
importing vaekit stays cheap and never needs a display.
"""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import torch

from .runs import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write(path, buffer.getvalue())


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (rows*H', cols*W', C) uint8 array, row-major."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = torch.ones(c, ncol * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top:top + h, left:left + w] = images[i]
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_image(array: np.ndarray, path: str | Path, scale: int = 1) -> None:
    """Write an (H, W, C) uint8 array as PNG (atomically), optionally upscaled for small images."""
    import io

    from PIL import Image

    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


CELL_INCHES = 0.9  # each image of a labelled table: about 100 pixels at _save's 110 dpi, however small
MAX_COLUMNS = 16  # images per line of a labelled table; more wrap onto further lines
CAPTION_POINTS = 7  # font size of a table's captions


def fit_caption(caption: str, chars: int) -> str:
    """Each line of caption at most `chars` characters: a longer one keeps its start and its end around
    an ellipsis ("sneaker_…03004.png"), so that neighbouring captions never run into each other while the
    part that tells files apart usually stays (the full names are in the report's CSV)."""
    def line(text: str) -> str:
        if len(text) <= chars:
            return text
        tail = (chars - 1) // 2
        return text[:chars - 1 - tail] + "…" + text[len(text) - tail:]

    return "\n".join(line(t) for t in caption.split("\n"))


def image_table(rows: dict[str, torch.Tensor], path: str | Path, captions: list[str] | None = None,
                title: str | None = None) -> None:
    """Images (N, C, H, W) in [0, 1] of several rows that belong together (inputs, their reconstructions),
    each row named on the left, column j captioned (its index, file or score) and drawn large enough to see:
    an 8x8 digit becomes about 100 pixels, not 8. Lines of MAX_COLUMNS wrap. One image on one axes, the
    labels placed over it (a subplot per image takes seconds to draw)."""
    plt = _pyplot()
    names, images = list(rows), [t.detach().float().clamp(0, 1).cpu() for t in rows.values()]
    n, c, h, w = images[0].shape
    ncol = min(n, MAX_COLUMNS)
    blocks = math.ceil(n / ncol)
    pad, gap = max(1, w // 8), (h if captions else max(1, h // 8))  # gap: room above each block for captions
    cell_w, block_h = w + pad, gap + len(names) * (h + pad)
    canvas = np.ones((blocks * block_h + pad, ncol * cell_w + pad, c), np.float32)
    for b in range(blocks):
        for r, batch in enumerate(images):
            for col in range(min(ncol, n - b * ncol)):
                top, left = b * block_h + gap + r * (h + pad), pad + col * cell_w
                canvas[top:top + h, left:left + w] = batch[b * ncol + col].permute(1, 2, 0).numpy()
    width_in = CELL_INCHES * ncol * (cell_w / w) + 1.2
    # A caption's line may be as wide as its cell: glyphs average about 0.75 of the font size in points.
    chars = max(5, int(CELL_INCHES * (cell_w / w) * 72 / (0.75 * CAPTION_POINTS)))
    fig, ax = plt.subplots(figsize=(width_in, width_in * canvas.shape[0] / canvas.shape[1]))
    ax.imshow(canvas[..., 0] if c == 1 else canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    for b in range(blocks):
        for r, name in enumerate(names):
            if name:
                ax.text(-pad, b * block_h + gap + r * (h + pad) + h / 2, name, ha="right", va="center", fontsize=8)
        for col in range(min(ncol, n - b * ncol)) if captions else ():
            ax.text(pad + col * cell_w + w / 2, b * block_h + gap - pad / 2,
                    fit_caption(captions[b * ncol + col], chars), ha="center", va="bottom", fontsize=CAPTION_POINTS)
    if title:  # just above the captions, not above the axes' box (which is taller than the image)
        ax.text(canvas.shape[1] / 2, -pad, title, ha="center", va="bottom", fontsize=9)
    _save(fig, path)


def image_strip(images: torch.Tensor, path: str | Path, captions: list[str], title: str | None = None) -> None:
    """One row of images (N, C, H, W) in [0, 1], each captioned (interpolation steps)."""
    image_table({"": images}, path, captions, title)


def training_curve(history: list[dict], path: str | Path) -> None:
    """Loss, reconstruction and KL per epoch, train and validation (the document's loss plot)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epochs = [m["epoch"] for m in history]
    for ax, key in zip(axes, ("loss", "reconstruction", "kl")):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = [m.get(f"{split}_{key}") for m in history]
            if all(v is not None for v in values):
                ax.plot(epochs, values, style, ms=3, label=split)
        ax.set_title({"loss": "negative ELBO", "reconstruction": "reconstruction", "kl": "KL"}[key])
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per example")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def latent_scatter(z: np.ndarray, labels: np.ndarray | None, path: str | Path,
                   classes: list[str] | None = None, title: str = "latent means",
                   axes: tuple[str, str] = ("z[0]", "z[1]")) -> None:
    """The document's view of a 2-D latent space: latent means coloured by label; `axes` names the two
    coordinates (a projection's components are not latent dimensions)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=2, alpha=0.5)
    elif len(np.unique(labels)) <= 10:  # a few classes: a legend with one colour each, not a 10-band colour bar
        size = 2 if len(z) > 2000 else 8
        for k, label in enumerate(np.unique(labels)):
            name = classes[label] if classes and 0 <= label < len(classes) else str(label)
            mine = labels == label
            ax.scatter(z[mine, 0], z[mine, 1], s=size, alpha=0.7, color=f"C{k}", label=name)
        ax.legend(title="label", markerscale=8 / size * 1.5, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="viridis", s=2, alpha=0.7)
        bar = fig.colorbar(points, ax=ax)
        bar.set_label("label")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title)
    _save(fig, path)


@torch.no_grad()
def manifold(model, path: str | Path, n: int = 20, span: float = 2.0) -> np.ndarray:
    """Decode an n x n grid of the 2-D latent space over [-span, span]^2 (the document's
    manifold plot); rows go from high z[1] at the top to low at the bottom."""
    axis = torch.linspace(-span, span, n)
    z = torch.stack([torch.stack([x, y]) for y in axis.flip(0) for x in axis]).to(model.device)
    grid = image_grid(model.decode_mean(z), nrow=n, pad=1)
    # Drawn on axes in latent coordinates: which code each image decodes is read off the ticks.
    plt = _pyplot()
    side = max(4.0, min(9.0, grid.shape[0] / 40))
    fig, ax = plt.subplots(figsize=(side + 0.8, side + 0.6))
    half = span / max(n - 1, 1)  # half a cell: each image is centred on its code
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
              extent=(-span - half, span + half, -span - half, span + half), interpolation="nearest")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(f"decoded means over [-{span:g}, {span:g}]^2")
    _save(fig, path)
    return grid


def kl_per_dimension(kl: list[float], path: str | Path, active: list[bool] | None = None) -> None:
    """Bar plot of the mean KL(q(z_u|x) || N(0, 1)) of each latent dimension u; collapsed dimensions
    sit at zero. Active units (Burda et al. 2016), when given, are drawn darker."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.22 * len(kl) + 2), 3.4))
    colours = None if active is None else ["tab:blue" if a else "lightgrey" for a in active]
    ax.bar(range(len(kl)), kl, color=colours)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats per example)")
    ax.set_title("KL per latent dimension" + ("" if active is None else " (grey: inactive)"))
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def png_data_url(image: np.ndarray) -> str:
    """(C, H, W) floats in [0, 1] -> a PNG data URL (the page scales it up, pixelated)."""
    from PIL import Image

    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)  # (C, H, W)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)  # (H, W) or (H, W, C)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # speed over a few bytes
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

"""Plots: the training curve, image grids, the latent scatter and the decoded manifold.

matplotlib is imported inside each function (with the non-interactive Agg backend) so that
importing vaekit stays cheap and never needs a display.
"""
from __future__ import annotations

import base64
import io
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
                   classes: list[str] | None = None, title: str = "latent means") -> None:
    """The document's view of a 2-D latent space: latent means coloured by label."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=2, alpha=0.5)
    else:
        points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=2, alpha=0.7)
        bar = fig.colorbar(points, ax=ax)
        if classes:
            bar.set_ticks(range(len(classes)))
            bar.set_ticklabels(classes)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    _save(fig, path)


@torch.no_grad()
def manifold(model, path: str | Path, n: int = 20, span: float = 2.0) -> np.ndarray:
    """Decode an n x n grid of the 2-D latent space over [-span, span]^2 (the document's
    manifold plot); rows go from high z[1] at the top to low at the bottom."""
    axis = torch.linspace(-span, span, n)
    z = torch.stack([torch.stack([x, y]) for y in axis.flip(0) for x in axis]).to(model.device)
    grid = image_grid(model.decode_mean(z), nrow=n, pad=1)
    save_image(grid, path, scale=max(1, 560 // grid.shape[0]))
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

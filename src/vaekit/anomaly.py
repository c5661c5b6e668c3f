"""Anomaly scores from a trained VAE: per-example log-likelihood estimates, thresholds calibrated on
held-out data, and the `vaekit anomalies` report (scores.csv, histogram, most anomalous examples).

A score is an estimate of log p(x) in nats (higher = more typical): the ELBO (Kingma & Welling
2014) averaged over k posterior draws, or the importance-weighted bound with k samples (Burda et
al. 2016), which is tighter and ranks better when the posterior is a poor fit. The ELBO draws use
the same k noise vectors for every example, so an example's score does not depend on which other
examples share its batch; the IW bound draws fresh noise per batch from a fixed seed.

For image and tabular runs the "reconstruction" score is minus the squared distance between x and
the decoded posterior mean (not nats; PCA's reconstruction error, with the VAE as the projection).
It does not favour simple inputs the way a likelihood does (Nalisnick et al. 2019): on one-class
MNIST digit 0 it gave AUROC 99.4 where the IW bound gave 95.1 (bench/RESULTS.md).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import VaekitError
from .objectives import iw_log_likelihood

METHODS = ("elbo", "iw", "reconstruction")
CALIBRATION = "calibration.json"  # held-out scores an estimator saved with its run


def check_method(method: str, k: int) -> None:
    if method not in METHODS:
        raise VaekitError(f"score must be one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(k, int | np.integer) or not 1 <= k <= 100_000:
        raise VaekitError(f"k (samples per example) must be an integer in 1..100000, got {k!r}")


@torch.no_grad()
def log_likelihood(model, x: Tensor, method: str = "elbo", k: int = 10, seed: int = 0,
                   max_rows: int = 2048) -> np.ndarray:
    """(N,) float64 scores of model-ready inputs x (N, ...), in eval mode: log-likelihood estimates
    (elbo, iw), or minus the squared reconstruction error (reconstruction)."""
    check_method(method, k)
    if method == "reconstruction" and model.kind == "text":
        raise VaekitError("the reconstruction score is for image and tabular runs; for text use elbo or iw")
    was_training = model.training
    model.eval()
    batch = max(1, max_rows // min(k, 100))  # batch * samples rows go through the decoder at once
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(k, 1, model.latent_dim, generator=gen).to(x.device)  # (k, 1, D): shared by all
    out = []
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(x), batch):
            b = x[start:start + batch]
            if method == "reconstruction":
                out.append(-(model.reconstruct(b).float() - b.float()).pow(2).flatten(1).sum(1))  # (B,)
            else:
                out.append(iw_log_likelihood(model, b, k) if method == "iw" else _elbo(model, b, eps))
    model.train(was_training)
    return torch.cat(out).double().cpu().numpy()


def run_scores(run, x: Tensor, method: str = "elbo", k: int = 10, seed: int = 0) -> np.ndarray:
    """Scores of model-ready x for a loaded run, in the run's units: a tabular run's densities are
    shifted to raw units (its `log_density_shift`); a reconstruction error is not a density."""
    shift = run.log_density_shift if method != "reconstruction" else 0.0
    return log_likelihood(run.model, x, method, k, seed) + shift


def _elbo(model, x: Tensor, eps: Tensor) -> Tensor:
    """ELBO (B,) = mean over the k draws z = mean + std * eps of log p(x|z), minus the analytic KL."""
    posterior = model.encode(x)
    k = eps.shape[0]
    z = posterior.mean + posterior.std * eps  # (k, B, D)
    x_rep = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])  # (k*B, ...)
    log_px_z = model.log_likelihood(x_rep, z.reshape(-1, z.shape[-1])).view(k, -1)  # (k, B)
    return log_px_z.float().mean(0) - posterior.kl().float().sum(1)


def threshold_for(scores: np.ndarray, contamination: float) -> float:
    """The score below which a `contamination` share of (held-out, typical) examples falls."""
    if not 0 < contamination < 1:
        raise VaekitError(f"contamination must be between 0 and 1, got {contamination}")
    return float(np.quantile(scores, contamination))


@dataclass
class Inputs:
    """New data for a run: x as the run's prepare() takes it, optional labels and sentences."""

    x: object
    y: np.ndarray | None
    classes: list[str] | None
    texts: list[str] | None = None


def read_inputs(run, source: str, limit: int | None = None) -> Inputs:
    """Read `source` the way the run's job reads data (images, sentences or a table)."""
    if run.kind == "text":
        from .text import read_texts

        sentences = read_texts(source, run.data_config, default_split="test")[:limit]
        if not sentences:
            raise VaekitError(f"{source} holds no sentences")
        return Inputs(sentences, None, None, sentences)
    if run.kind == "tabular":
        x, y, classes = run.read(source)
        return Inputs(x[:limit], None if y is None else y[:limit], classes)
    from .image import read_images

    images = read_images(source, run.data_config, default_split="test")
    if len(images.x) == 0:
        raise VaekitError(f"{source} holds no images")
    y = None if images.y is None else images.y[:limit]
    return Inputs(images.x[:limit], y, images.classes)


def heldout_scores(run, method: str, k: int) -> np.ndarray:
    """Scores of the run's validation split: saved by the estimator, else recomputed from the
    run's own data settings (the same split and preparation as in training)."""
    from . import api
    from .data import PREPARE
    from .runs import read_json

    saved = run.path / CALIBRATION
    if saved.exists():
        cal = read_json(saved)
        if isinstance(cal, dict) and cal.get("method") == method and cal.get("k") == k:
            return np.asarray(cal["scores"], np.float64)
    try:
        prepared = api._job(run.kind).prepare(run.data_config, run.path)
    except VaekitError as e:
        raise VaekitError(f"cannot calibrate a threshold: the run's validation data cannot be read ({e}); "
                          "pass --threshold T instead") from None
    val = prepared.val
    x = PREPARE["rescale" if val.prepare == "binarize" else val.prepare](val.x).to(run.device)
    return run_scores(run, x, method, k)


def report(run, source: str, out: Path, contamination: float | None = None, threshold: float | None = None,
           method: str = "elbo", k: int = 10, n_show: int = 16, limit: int | None = None) -> dict:
    """Score `source`, flag what falls below the threshold, write the report files into `out`."""
    from .runs import write_json

    check_method(method, k)
    data = read_inputs(run, source, limit)
    scores = run.score(data.x, method, k)
    if threshold is None:
        contamination = 0.01 if contamination is None else contamination
        threshold = threshold_for(heldout_scores(run, method, k), contamination)
    flags = scores < threshold
    out.mkdir(parents=True, exist_ok=True)
    write_scores_csv(out / "scores.csv", scores, flags, data)
    what = ("minus squared reconstruction error" if method == "reconstruction"
            else f"{method} (k={k}) log-likelihood estimate (nats)")
    histogram(scores, threshold, out / "histogram.png", f"{what}, {source}")
    order = np.argsort(scores)[:n_show]  # most anomalous first
    if run.kind == "image":
        x = run.prepare(data.x[order]).cpu()
        pairs = torch.stack([x, torch.from_numpy(run.reconstruct(data.x[order]))], 1).flatten(0, 1)
        from . import visual

        grid = visual.image_grid(pairs, nrow=2 * min(8, len(order)))
        visual.save_image(grid, out / "most_anomalous.png", max(1, 400 // grid.shape[1]))
    lines = [f"{scores[i]:.2f}\t{i}\t{data.texts[i]}" for i in order] if data.texts else None
    if lines:
        from .runs import atomic_write

        atomic_write(out / "most_anomalous.txt", ("score\tindex\tsentence\n" + "\n".join(lines) + "\n").encode())
    summary = {"data": source, "n": int(len(scores)), "method": method, "k": k, "contamination": contamination,
               "threshold": float(threshold), "flagged": int(flags.sum()),
               "most_anomalous": [int(i) for i in order]}
    write_json(out / "summary.json", summary)
    summary["lines"] = lines
    if data.texts:  # words the run never saw are read as <unk>: say how many, they lower the scores
        unknown = sum(len(run.unknown_words(t)) for t in data.texts)
        words = sum(len(run.tokenizer.tokenize(t)) for t in data.texts)
        summary["unknown_words"] = f"{unknown} of {words}"
    return summary


def write_scores_csv(path: Path, scores: np.ndarray, flags: np.ndarray, data: Inputs) -> None:
    """index, score, flag (-1 outlier / 1 inlier, scikit-learn's convention), label, sentence."""
    from .runs import atomic_write

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["index", "score", "flag"] + (["label"] if data.y is not None else []) \
        + (["text"] if data.texts else [])
    writer.writerow(header)
    for i, (s, f) in enumerate(zip(scores, flags)):
        row = [i, f"{s:.6g}", -1 if f else 1]
        if data.y is not None:
            row.append(data.classes[data.y[i]] if data.classes and data.y[i] < len(data.classes) else int(data.y[i]))
        if data.texts:
            row.append(data.texts[i])
        writer.writerow(row)
    atomic_write(path, buffer.getvalue().encode())


def histogram(scores: np.ndarray, threshold: float, path: Path, title: str) -> None:
    from .visual import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    low = np.percentile(scores, 0.5) if len(scores) > 200 else scores.min()  # keep far outliers from squashing it
    ax.hist(np.clip(scores, low, None), bins=60, color="#4878a8")
    ax.axvline(threshold, color="#c03030", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("score (lower = more anomalous)")
    ax.set_ylabel("examples")
    ax.set_title(title)
    ax.legend()
    _save(fig, path)


def calibration_json(scores: np.ndarray, method: str, k: int) -> bytes:
    return (json.dumps({"method": method, "k": int(k), "scores": [float(s) for s in scores]}) + "\n").encode()

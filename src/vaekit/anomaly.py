"""Anomaly scores from a trained VAE (higher = more typical): log-likelihood estimates, reconstruction
errors and distances to the training codes; thresholds calibrated on held-out data; and the
`vaekit anomalies` report (scores.csv, histogram, most anomalous examples).

The likelihood scores estimate log p(x) in nats: the ELBO (Kingma & Welling
2014) averaged over k posterior draws, or the importance-weighted bound with k samples (Burda et
al. 2016), which is tighter and ranks better when the posterior is a poor fit. The ELBO draws use
the same k noise vectors for every example, so an example's score does not depend on which other
examples share its batch; the IW bound draws fresh noise per batch from a fixed seed.

For image and tabular runs the "reconstruction" score is minus the squared distance between x and
the decoded posterior mean (not nats; PCA's reconstruction error, with the VAE as the projection).
It does not favour simple inputs the way a likelihood does (Nalisnick et al. 2019): on one-class
MNIST digit 0 it gave AUROC 99.4 where the IW bound gave 95.1 (bench/RESULTS.md). For images the
distance is taken after a small Gaussian blur of both (sigma 1 pixel on a 28-pixel side, scaled
with the image's size), so that a stroke drawn one
pixel aside costs less than a missing one, and it is relative: divided by the blurred image's own
squared norm. An image with little ink (a 1 scored by a model of 8s) is otherwise "well
reconstructed" merely because it has little to reconstruct; the relative error lifted one-class
MNIST digit 8 from 92.1 to 96.6 AUROC (bench/RESULTS.md).

Two scores compare an example with the training data in the latent space instead: "knn", minus the
mean distance from the posterior mean to its NEIGHBOURS nearest training codes (the k-NN outlier
score of Ramaswamy et al. 2000 / Angiulli & Pizzuti 2002, on the VAE's codes), and
"reconstruction+knn", minus the sum of both distances, each standardised by its spread over the
training data (kNN distances leave-one-out). The two fail differently: an image the decoder can draw
but that lies far from any training code, and one that lands among training codes but decodes
badly. The training codes and errors are the run's reference set (reference.safetensors).

The scores that hold beyond MNIST (bench/anomaly.py, bench/RESULTS.md) weigh each input feature by
how well the model reconstructs it on normal data: "standardised" is minus the sum over features of
the squared residual of the posterior mean divided by that feature's mean squared residual on the
training data (the log-likelihood, up to constants, of a diagonal Gaussian residual model fitted
after training; no blur, not relative, so a bright garment is not favoured over a faint one);
"mahalanobis" is minus the Mahalanobis distance of the posterior mean from the Gaussian fitted to
the training codes (Lee et al. 2018 use it on a classifier's features); "a+b" adds components a
and b, each standardised by its mean and spread over the training data, and "a+b+c" three of them.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import modalities, stamps
from .errors import VaekitError
from .modalities import Inputs
from .objectives import iw_log_likelihood

METHODS = ("elbo", "iw", "reconstruction", "knn", "reconstruction+knn", "standardised", "mahalanobis",
           "standardised+knn", "standardised+mahalanobis", "reconstruction+standardised+knn", "elbo-per-token")
# Text only: the ELBO divided by the sentence's tokens (counting <eos>), minus log perplexity. Raw
# log-likelihoods fall with length, so a ranking by elbo puts the longest sentences first; among 46 news
# sentences, three of them odd, "buy buy buy sell sell sell now now now" ranked 26th by elbo, 2nd by this.
PER_TOKEN = ("elbo-per-token",)
# Scores that compare with the training data (its codes, its reconstruction residuals).
NEEDS_REFERENCE = ("knn", "reconstruction+knn", "standardised", "mahalanobis", "standardised+knn",
                   "standardised+mahalanobis", "reconstruction+standardised+knn")
NEEDS_RESIDUALS = ("reconstruction", "reconstruction+knn", "standardised", "standardised+knn",
                   "standardised+mahalanobis", "reconstruction+standardised+knn")  # image and tabular runs only
CALIBRATION = "calibration.json"  # held-out scores an estimator saved with its run
HELDOUT = "heldout_scores.json"  # held-out scores `vaekit anomalies` computed, by method and k, stamped
REFERENCE = "reference.safetensors"  # training codes and reconstruction errors (knn scores)
NEIGHBOURS = 5  # k of the k-NN distance
REFERENCE_MAX = 20_000  # training examples kept in a reference set (a seeded subsample beyond it)
SCORE_UNITS = {"reconstruction": "minus squared reconstruction error (images: relative)",
               "elbo-per-token": "ELBO per token (nats, <eos> counted): minus log perplexity",
               "knn": f"minus mean distance to the {NEIGHBOURS} nearest training codes",
               "reconstruction+knn": "minus standardised reconstruction error + k-NN distance",
               "standardised": "minus squared reconstruction error per feature / its training mean",
               "mahalanobis": "minus Mahalanobis distance of the code from the training codes",
               "standardised+knn": "minus standardised residual + k-NN distance, each standardised",
               "standardised+mahalanobis": "minus standardised residual + Mahalanobis distance, standardised",
               "reconstruction+standardised+knn": "minus reconstruction error + standardised residual + k-NN "
                                                  "distance, each standardised"}
REFERENCE_MEASURE = ("3: posterior means; squared error, images blurred (sigma side/28) and relative; "
                     "per-feature mean squared residual")
VARIANCE_FLOOR = 0.05  # a feature's residual variance is at least this share of the mean one (why: MNIST's
# corner pixels are always 0, a residual of 0.01 there would otherwise outweigh a missing stroke)
# Blur sigma in pixels for a 28-pixel image, scaled with the image's side: on MNIST, one-class AUROC
# +1.9 (digit 8) and +1.5 (digit 2) over no blur; an unscaled 1-pixel blur of the bundled 8x8 digits
# cost 2.9 points of mean AUROC (bench/RESULTS.md).
BLUR_SIGMA = 1.0


def check_method(method: str, k: int) -> None:
    if method not in METHODS:
        raise VaekitError(f"score must be one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(k, int | np.integer) or not 1 <= k <= 100_000:
        raise VaekitError(f"k (samples per example) must be an integer in 1..100000, got {k!r}")


@torch.no_grad()
def log_likelihood(model, x: Tensor, method: str = "elbo", k: int = 10, seed: int = 0,
                   max_rows: int = 2048, progress: str | None = None) -> np.ndarray:
    """(N,) float64 scores of model-ready inputs x (N, ...), in eval mode: log-likelihood estimates
    (elbo, iw), or minus the squared reconstruction error (reconstruction). progress: a progress bar's
    label (shown on a terminal), None for none."""
    from tqdm.auto import tqdm

    check_method(method, k)
    if method in NEEDS_REFERENCE:
        raise VaekitError(f"the {method} score needs the run's training codes: use run_scores")
    check_kind(method, model.kind)
    was_training = model.training
    model.eval()
    batch = max(1, max_rows // min(k, 100))  # batch * samples rows go through the decoder at once
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(k, 1, model.latent_dim, generator=gen).to(x.device)  # (k, 1, D): shared by all
    out = []
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in tqdm(range(0, len(x), batch), desc=progress, leave=False,
                          disable=True if progress is None else None):  # None: on a terminal only
            b = x[start:start + batch]
            if method == "reconstruction":
                out.append(-reconstruction_error(model, b))
            elif method in PER_TOKEN:  # token ids (B, T), 0-padded, <eos> counted as perplexity counts it
                out.append(_elbo(model, b, eps) / (b != 0).sum(1).clamp_min(1).float())
            else:
                out.append(iw_log_likelihood(model, b, k) if method == "iw" else _elbo(model, b, eps))
    model.train(was_training)
    return torch.cat(out).double().cpu().numpy()


def check_kind(method: str, kind) -> None:
    """Refuse a score the kind of data (a name or a modality) has no use for."""
    if method in PER_TOKEN and not modalities.get(kind).makes_text:
        raise VaekitError(f"the {method} score is for text runs (nats per token of a sentence); for "
                          f"{modalities.get(kind).name} use elbo")
    if method in NEEDS_RESIDUALS and not modalities.get(kind).has_reconstruction:
        able = [m.name for m in map(modalities.get, modalities.names()) if m.has_reconstruction]
        kinds = " and ".join([", ".join(able[:-1]), able[-1]] if len(able) > 1 else able)
        raise VaekitError(f"the {method} score is for {kinds} runs; for {modalities.get(kind).name} use elbo, iw, "
                          "knn or mahalanobis")


def reconstruction_error(model, x: Tensor) -> Tensor:
    """(B,) squared distance between model-ready x and the decoded posterior mean, in fp32; for
    images (B, C, H, W) both are blurred first (Gaussian, BLUR_SIGMA pixels per 28) and the distance is
    divided by the blurred image's squared norm (floored, so a blank image scores as very unusual)."""
    x = x.float()
    return error_of(x, model.reconstruct(x).float())


def error_of(x: Tensor, r: Tensor) -> Tensor:
    """(B,) reconstruction_error of fp32 inputs x given their fp32 reconstructions r (the same shape). A table's
    missing cells (NaN) count as the row's mean squared residual over its observed cells, so a row with gaps
    is neither favoured nor penalised for them."""
    if x.dim() != 4:
        squared = (r - x).pow(2).flatten(1)  # (B, F), NaN where x is missing
        return squared.nanmean(1) * squared.shape[1]
    sigma = BLUR_SIGMA * min(x.shape[-2:]) / 28  # the same share of the image as 1 pixel of MNIST's 28
    r, x = blur(r, sigma), blur(x, sigma)
    energy = x.pow(2).flatten(1).sum(1).clamp_min(1e-6 * x[0].numel())
    return (r - x).pow(2).flatten(1).sum(1) / energy


def blur(x: Tensor, sigma: float = BLUR_SIGMA) -> Tensor:
    """Separable Gaussian blur of images (B, C, H, W), radius 2 sigma, zero padding."""
    radius = max(1, round(2 * sigma))
    k = torch.exp(-torch.arange(-radius, radius + 1.0, device=x.device) ** 2 / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


@torch.no_grad()
def _batched(fn, model, x: Tensor, batch: int = 1000) -> Tensor:
    """fn(model, chunk) over model-ready x in chunks, in eval mode, concatenated on the CPU."""
    was_training = model.training
    model.eval()
    out = torch.cat([fn(model, x[i:i + batch]) for i in range(0, len(x), batch)])
    model.train(was_training)
    return out.cpu()


def codes(model, x: Tensor) -> Tensor:
    """(N, D) fp32 posterior means of model-ready x."""
    return _batched(lambda m, b: m.encode(b).mean.float(), model, x)


def errors(model, x: Tensor) -> Tensor:
    """(N,) reconstruction errors of model-ready x (reconstruction_error, in chunks)."""
    return _batched(reconstruction_error, model, x)


def errors_and_residuals(model, x: Tensor) -> tuple[Tensor, Tensor]:
    """(N,) reconstruction errors and (N, F) fp32 squared residuals of model-ready x, one decoder pass."""

    def both(m, b):
        b = b.float()
        r = m.reconstruct(b).float()
        return torch.cat([error_of(b, r)[:, None], (r - b).pow(2).flatten(1)], 1)  # (B, 1 + F)

    out = _batched(both, model, x)
    return out[:, 0], out[:, 1:]


def residuals(model, x: Tensor) -> Tensor:
    """(N, F) fp32 squared residuals of the decoded posterior means of model-ready x, flattened."""
    return _batched(lambda m, b: (m.reconstruct(b.float()).float() - b.float()).pow(2).flatten(1), model, x)


@dataclass
class Reference:
    """The training data as the reference scores see it: codes (N, D), their blurred relative
    reconstruction errors (N,) and per-feature mean squared residuals (F,) (image and tabular runs),
    and the mean and spread of each distance over the training data, by which "a+b" weighs them."""

    codes: Tensor
    errors: Tensor | None
    feature_var: Tensor | None = None

    def __post_init__(self):
        from sklearn.neighbors import NearestNeighbors

        if len(self.codes) < NEIGHBOURS + 2:
            raise VaekitError(f"the knn scores need at least {NEIGHBOURS + 2} training examples, "
                              f"got {len(self.codes)}")
        z = self.codes.double().numpy()
        self.index = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(z)
        # Leave-one-out: each training code's distance to its k nearest *other* training codes.
        own = self.index.kneighbors(z)[0][:, 1:].mean(1)
        self.code_mean = z.mean(0)
        cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])
        self.code_precision = np.linalg.pinv(cov + 1e-6 * np.eye(len(cov)))  # (D, D)
        self.spread = {"knn": _spread(own), "mahalanobis": _spread(self.mahalanobis(self.codes))}
        if self.errors is not None:
            self.spread["reconstruction"] = _spread(self.errors.double().numpy())

    def distance(self, z: Tensor) -> np.ndarray:
        """(N,) mean distance from codes z (N, D) to their NEIGHBOURS nearest training codes."""
        return self.index.kneighbors(z.double().numpy(), n_neighbors=NEIGHBOURS)[0].mean(1)

    def mahalanobis(self, z: Tensor) -> np.ndarray:
        """(N,) Mahalanobis distance of codes z (N, D) from the training codes' mean and covariance."""
        d = z.double().numpy() - self.code_mean  # (N, D)
        return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, self.code_precision, d), 0))

    def standardised(self, squared: Tensor) -> np.ndarray:
        """(N,) sum over features of squared residuals (N, F) / the feature's training mean. A missing cell
        (NaN, tables) counts as 1, the training rows' mean of that ratio: neither typical nor unusual."""
        if self.feature_var is None:
            raise VaekitError("this reference set has no reconstruction residuals (a text run)")
        floor = VARIANCE_FLOOR * self.feature_var.mean()
        return (squared / self.feature_var.clamp_min(floor)).nan_to_num(1.0).sum(1).double().numpy()

    def distances(self, model, x: Tensor, names) -> dict[str, np.ndarray]:
        """The named distances (higher = less typical) of model-ready x, codes computed once, and
        reconstructions once when both reconstruction distances are asked for."""
        z = codes(model, x) if {"knn", "mahalanobis"} & set(names) else None
        out = {}
        if {"reconstruction", "standardised"} <= set(names) and self.errors is not None:
            if self.feature_var is None:
                raise VaekitError("this reference set has no reconstruction residuals (a text run)")
            errs, squared = errors_and_residuals(model, x)
            out["reconstruction"], out["standardised"] = errs.double().numpy(), self.standardised(squared)
        for name in (n for n in names if n not in out):
            if name == "knn":
                out[name] = self.distance(z)
            elif name == "mahalanobis":
                out[name] = self.mahalanobis(z)
            elif name == "standardised":
                out[name] = self.standardised(residuals(model, x))
            elif self.errors is None:
                raise VaekitError("this reference set has no reconstruction errors (a text run)")
            else:
                out[name] = errors(model, x).double().numpy()
        return out

    def combine(self, distances: dict[str, np.ndarray], method: str) -> np.ndarray:
        """The score of `method` (higher = more typical) from its components' distances: one alone
        as it is, several as the sum of their standardised values."""
        parts = method.split("+")
        if len(parts) == 1:
            return -distances[method]
        return -sum((distances[p] - self.spread[p][0]) / self.spread[p][1] for p in parts)

    def score(self, model, x: Tensor, method: str) -> np.ndarray:
        if "standardised" in method.split("+") and "standardised" not in self.spread:
            raise VaekitError("this reference set has no reconstruction residuals (a text run)")
        if "reconstruction" in method.split("+") and self.errors is None:
            raise VaekitError("this reference set has no reconstruction errors (a text run)")
        return self.combine(self.distances(model, x, method.split("+")), method)

    def fit_standardised(self, train_residuals: Tensor) -> None:
        """The training set's standardised residuals' spread (N, F) -> spread["standardised"]."""
        self.spread["standardised"] = _spread(self.standardised(train_residuals))

    def tensors(self) -> dict:
        out = {"codes": self.codes}
        if self.errors is not None:
            out["errors"] = self.errors
        if self.feature_var is not None:
            out["feature_var"] = self.feature_var
            out["standardised_spread"] = torch.tensor(self.spread["standardised"], dtype=torch.float64)
        return out


def _spread(d: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of distances d, the deviation floored so a constant does not divide by 0."""
    return float(d.mean()), max(float(d.std()), 1e-12)


def build_reference(model, x: Tensor, seed: int = 0) -> Reference:
    """The reference set of model-ready training data x (at most REFERENCE_MAX, a seeded subsample)."""
    if len(x) > REFERENCE_MAX:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:REFERENCE_MAX].to(x.device)]
    if not modalities.of_model(model).has_reconstruction:
        return Reference(codes(model, x), None)
    errs, squared = errors_and_residuals(model, x)  # (N,), (N, F), NaN where a table's cell is missing
    feature_var = squared.nanmean(0)  # (F,) over each feature's observed cells
    reference = Reference(codes(model, x), errs, feature_var.nan_to_num(float(feature_var.nanmean())))
    reference.fit_standardised(squared)
    return reference


def save_reference(run_path: Path, reference: Reference) -> None:
    """Write reference.safetensors, stamped with the digest of the weights it was made with."""
    from .runs import WEIGHTS, file_digest, save_tensors

    save_tensors(run_path / REFERENCE, reference.tensors(), reference_stamp(file_digest(run_path / WEIGHTS)))


def reference_stamp(weights_digest: str) -> dict[str, str]:
    """What a saved reference set was made with: the weights, and how errors and codes are measured
    (a later vaekit that measures differently makes the set again instead of mixing the two)."""
    return {"weights_sha256": weights_digest, "measure": REFERENCE_MEASURE}


def run_reference(run) -> Reference:
    """The run's reference set: its reference.safetensors when made with the run's current weights,
    else made from the run's own training split (read as in training) and saved there."""
    from .runs import WEIGHTS, file_digest, load_tensors, tensors_metadata

    if run.reference is not None:
        return run.reference
    path = run.path / REFERENCE
    # A run trained further (vaekit resume) has new codes: a stamp that differs means "make it again".
    if path.exists() and tensors_metadata(path) == reference_stamp(file_digest(run.path / WEIGHTS)):
        t = load_tensors(path)
        if "codes" not in t or t["codes"].dim() != 2 or t["codes"].shape[1] != run.model.latent_dim:
            raise VaekitError(f"{path} does not hold this run's training codes; delete it to make it again")
        run.reference = Reference(t["codes"].float(), t["errors"].float() if "errors" in t else None,
                                  t["feature_var"].float() if "feature_var" in t else None)
        if "standardised_spread" in t:
            run.reference.spread["standardised"] = tuple(float(v) for v in t["standardised_spread"])
        return run.reference
    try:
        train = run.modality.training_data(run.data_config, run.path).train
    except VaekitError as e:
        raise VaekitError(f"the knn scores compare with the run's training data, which cannot be read ({e}); "
                          "the elbo and iw scores need no training data") from None
    x = modalities.model_ready(train).to(run.device)
    run.reference = build_reference(run.model, x)
    try:
        save_reference(run.path, run.reference)
    except (OSError, VaekitError):  # a read-only run: the reference is made again next time
        pass
    return run.reference


def run_scores(run, x: Tensor, method: str = "elbo", k: int = 10, seed: int = 0,
               progress: str | None = None) -> np.ndarray:
    """Scores of model-ready x for a loaded run, in the run's units: a tabular run's densities are
    shifted to raw units (its `log_density_shift`); distances are not densities."""
    check_method(method, k)
    check_kind(method, run.modality)
    if method in NEEDS_REFERENCE:
        return run_reference(run).score(run.model, x, method)
    shift = run.log_density_shift if method in ("elbo", "iw") else 0.0
    return log_likelihood(run.model, x, method, k, seed, progress=progress) + shift


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


def check_heldout_size(n: int, contamination: float) -> None:
    """Warn when the held-out split is too small for the quantile asked: with fewer than one held-out
    example below it, the threshold is interpolated near the split's minimum, and the share of new data
    flagged can be far from `contamination` (at 0.01 of wine's 36 held-out rows, 8.4 % of wine by the
    tables' default score)."""
    import warnings

    if n * contamination < 1:
        warnings.warn(f"the threshold is the {contamination:g} quantile of the run's {n} held-out scores, fewer than "
                      f"one example's worth: the share flagged can be far from {contamination:g}; give a "
                      f"contamination of at least {1 / n:.2g} (one held-out example) or a fixed --threshold",
                      stacklevel=3)


def read_inputs(run, source: str, limit: int | None = None) -> Inputs:
    """Read `source` the way the run's kind reads data (images, sentences or a table)."""
    return run.read(source, limit)


def heldout_scores(run, method: str, k: int, seed: int = 0) -> np.ndarray:
    """Scores of the run's validation split: saved by the estimator, else cached in the run
    (HELDOUT, stamped with the weights), else computed from the run's own data settings (the same split
    and preparation as in training) and cached: a text run's held-out split takes a minute to score."""
    from .runs import read_json, write_json

    saved = run.path / CALIBRATION
    if saved.exists():
        cal = read_json(saved)
        if (isinstance(cal, dict) and cal.get("method") == method and cal.get("k") == k
                and (stamps.KEY not in cal or stamps.matches(cal[stamps.KEY], run.path))):
            return np.asarray(cal["scores"], np.float64)
    key, cache = f"{method} k={k}" + (f" seed={seed}" if seed else ""), run.path / HELDOUT
    cached = read_json(cache) if cache.exists() else {}
    if not (isinstance(cached, dict) and stamps.matches(cached.get(stamps.KEY), run.path)):
        cached = {stamps.KEY: stamps.of_run(run.path), "scores": {}}  # made with other weights: start again
    if isinstance(cached.get("scores"), dict) and isinstance(cached["scores"].get(key), list):
        return np.asarray(cached["scores"][key], np.float64)
    try:
        prepared = run.modality.training_data(run.data_config, run.path)
    except VaekitError as e:
        raise VaekitError(f"cannot calibrate a threshold: the run's validation data cannot be read ({e}); "
                          "pass --threshold T instead") from None
    x = modalities.model_ready(prepared.val).to(run.device)
    scores = run_scores(run, x, method, k, seed, progress="scoring the held-out split")
    cached["scores"][key] = [float(s) for s in scores]
    try:
        write_json(cache, cached)
    except VaekitError:  # a read-only run: scored again next time
        pass
    return scores


def report(run, source: str, out: Path, contamination: float | None = None, threshold: float | None = None,
           method: str = "elbo", k: int = 10, n_show: int = 16, limit: int | None = None, seed: int = 0) -> dict:
    """Score `source`, flag what falls below the threshold, write the report files into `out`."""
    from .runs import write_json

    check_method(method, k)
    data = read_inputs(run, source, limit)
    scores = run_scores(run, run.prepare(data.x), method, k, seed, progress=f"scoring {source}")
    heldout = None
    if threshold is None:
        contamination = 0.01 if contamination is None else contamination
        reference = heldout_scores(run, method, k, seed)
        heldout = len(reference)
        check_heldout_size(heldout, contamination)
        threshold = threshold_for(reference, contamination)
    flags = scores < threshold
    out.mkdir(parents=True, exist_ok=True)
    write_scores_csv(out / "scores.csv", scores, flags, data)
    what = SCORE_UNITS.get(method) or f"{method} (k={k}) log-likelihood estimate (nats)"
    histogram(scores, threshold, out / "histogram.png", f"{what}, {source}")
    order = np.argsort(scores, kind="stable")  # most anomalous first
    if flags.any():  # show what was flagged (at most n_show), not unflagged examples beside them
        order, title = order[:min(n_show, int(flags.sum()))], f"flagged below {threshold:.4g}, most anomalous first"
    else:
        order, title = order[:min(n_show, 4)], f"none flagged below {threshold:.4g}: the lowest scores"
    lines = run.modality.show_examples(run, data, order, scores, out, title=title)
    summary = {"data": source, "n": int(len(scores)), "method": method, "k": k, "contamination": contamination,
               "heldout_examples": heldout, "threshold": float(threshold), "flagged": int(flags.sum()),
               "most_anomalous": [int(i) for i in order], stamps.KEY: stamps.of_run(run.path)}
    write_json(out / "summary.json", summary)
    summary["lines"] = lines
    if data.texts:  # words the run never saw are read as <unk>: say how many, they lower the scores
        unknown = sum(len(run.unknown_words(t)) for t in data.texts)
        words = sum(len(run.tokenizer.tokenize(t)) for t in data.texts)
        summary["unknown_words"] = f"{unknown} of {words}"
    return summary


def write_scores_csv(path: Path, scores: np.ndarray, flags: np.ndarray, data: Inputs) -> None:
    """index, score, flag (-1 outlier / 1 inlier, scikit-learn's convention), label, sentence, and what
    names the example in its source (an image's file, a table's ID column)."""
    from .runs import atomic_write

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["index", "score", "flag"] + (["label"] if data.y is not None else []) \
        + (["text"] if data.texts else []) + ([data.id_name] if data.ids else [])
    writer.writerow(header)
    for i, (s, f) in enumerate(zip(scores, flags)):
        row = [i, f"{s:.6g}", -1 if f else 1]
        if data.y is not None:
            row.append(data.classes[data.y[i]] if data.classes and data.y[i] < len(data.classes) else int(data.y[i]))
        if data.texts:
            row.append(data.texts[i])
        if data.ids:
            row.append(data.ids[i])
        writer.writerow(row)
    atomic_write(path, buffer.getvalue().encode())


def histogram_floor(scores: np.ndarray, threshold: float) -> float:
    """The lowest score the histogram draws where it is: far outliers below it are drawn in its first bin,
    so they do not squash the rest into one bar. Always left of the threshold: a flagged score drawn right
    of the threshold line would look typical."""
    if len(scores) <= 200:
        return float(scores.min())
    low, high = np.percentile(scores, [0.5, 99.5])
    margin = 0.02 * (float(high - low) or 1.0)  # 2 % of the bulk's width
    return max(float(scores.min()), min(float(low), threshold - margin))


def histogram(scores: np.ndarray, threshold: float, path: Path, title: str) -> None:
    from .visual import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    low = histogram_floor(scores, threshold)
    counts, edges, _ = ax.hist(np.clip(scores, low, None), bins=60, color="#4878a8")
    below = int((scores < low).sum())
    if below:  # say that the first bar holds scores further left than it shows
        ax.annotate(f"{below} below {low:.3g}", (edges[0], counts[0]), xytext=(2, 4), textcoords="offset points",
                    fontsize=8, color="#c03030")
    ax.axvline(threshold, color="#c03030", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("score (lower = more anomalous)")
    ax.set_ylabel("examples")
    ax.set_title(title)
    ax.legend()
    _save(fig, path)


def calibration_json(scores: np.ndarray, method: str, k: int) -> bytes:
    return (json.dumps({"method": method, "k": int(k), "scores": [float(s) for s in scores]}) + "\n").encode()

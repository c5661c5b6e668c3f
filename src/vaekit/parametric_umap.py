"""A parametric 2-D map of latent codes: a small network trained with UMAP's objective.

UMAP (McInnes, Healy & Melville 2018) places points so that a fuzzy k-nearest-neighbour graph of the
data is kept; its `transform` of new points runs a fresh optimisation against the training
embedding, which is slow. Parametric UMAP (Sainburg, McInnes & Gentner 2021, Neural Computation 33)
trains a network f with the same loss instead, so a new point costs one forward pass. Here f maps a
VAE's latent means (a few to a few dozen dimensions, where neighbourhoods are meaningful) to 2-D:

    Pipeline([("vae", vaekit.VAE(kind="image", latent_dim=16)), ("map", vaekit.ParametricUMAP())])

The loss, for an edge (i, j) of the symmetrised fuzzy graph sampled in proportion to its weight and
for negatives j' drawn from the batch:  -log q_ij - sum_j' log(1 - q_ij'),  with
q = 1 / (1 + a d^(2b)) and (a, b) fitted to `min_dist` as UMAP does. No umap-learn needed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .errors import VaekitError


@dataclass(frozen=True)
class MapConfig:
    """What the saved map needs to be rebuilt: its input width, layers and output curve."""

    input_dim: int
    n_components: int = 2
    hidden: tuple[int, ...] = (128, 128)
    a: float = 1.577
    b: float = 0.895

    @classmethod
    def from_json(cls, text: str) -> MapConfig:
        data = json.loads(text)
        data["hidden"] = tuple(data["hidden"])
        return cls(**data)


def build_map(config: MapConfig) -> nn.Sequential:
    layers, width = [], config.input_dim
    for h in config.hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, config.n_components))
    return nn.Sequential(*layers)


def curve_parameters(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """(a, b) such that 1 / (1 + a d^(2b)) fits 1 below min_dist and exp(-(d - min_dist) / spread)
    above it: UMAP's low-dimensional similarity (McInnes et al. 2018, section 4)."""
    from scipy.optimize import curve_fit

    d = np.linspace(0, 3 * spread, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = curve_fit(lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), d, target)
    return float(a), float(b)


def fuzzy_graph(x: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (heads, tails, weights) of UMAP's symmetrised fuzzy k-NN graph of the rows of x.

    Each point's membership strengths exp(-(d - rho_i) / sigma_i), with rho_i its distance to the
    nearest neighbour and sigma_i chosen so that they sum to log2(k); then w = p + p^T - p * p^T."""
    from scipy.sparse import coo_matrix
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    k = min(n_neighbors, n)
    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)  # (N, k), column 0 is the point
    dist, idx = dist[:, 1:], idx[:, 1:]
    rho = dist[:, :1]                                                  # (N, 1)
    excess = np.maximum(dist - rho, 0.0)
    target = np.log2(k)
    lo, hi = np.zeros((n, 1)), np.full((n, 1), np.inf)
    sigma = np.ones((n, 1))
    for _ in range(64):  # bisection on every row at once
        total = np.exp(-excess / sigma).sum(axis=1, keepdims=True)
        too_wide = total > target
        hi = np.where(too_wide, sigma, hi)
        lo = np.where(too_wide, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2, (lo + hi) / 2)
    sigma = np.maximum(sigma, 1e-3 * max(float(dist.mean()), 1e-12))
    p = coo_matrix((np.exp(-excess / sigma).ravel(), (np.repeat(np.arange(n), k - 1), idx.ravel())),
                   shape=(n, n)).tocsr()
    w = (p + p.T - p.multiply(p.T)).tocoo()
    return w.row.astype(np.int64), w.col.astype(np.int64), w.data.astype(np.float64)


class ParametricUMAP(TransformerMixin, BaseEstimator):
    """Parametric UMAP (Sainburg et al. 2021) as a scikit-learn transformer on numeric rows.

    Parameters: n_components (2), n_neighbors (15), min_dist (0.1), hidden (widths of the MLP),
    steps (optimizer steps; None: N / 5 for N rows, between 500 and 8000), batch_size (edges a
    step), negative_rate (negatives per edge), lr, random_state (None: 0), device, precision ("fp32" | "bf16"
    autocast for `transform`; training stays fp32). `transform` is one forward pass; `save`/`load`
    keep the network as safetensors with a JSON config, like every vaekit run.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 2, None, closed="left")],
        "min_dist": [Interval(Real, 0, None, closed="left")],
        "hidden": [tuple, list],
        "steps": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "negative_rate": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "device": [str],
        "precision": [StrOptions({"fp32", "bf16", "fp16"})],
    }

    def __init__(self, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1,
                 hidden=(128, 128), steps: int | None = None, batch_size: int = 2048, negative_rate: int = 5,
                 lr: float = 3e-3, random_state: int | None = 0, device: str = "cpu", precision: str = "fp32"):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.hidden = hidden
        self.steps = steps
        self.batch_size = batch_size
        self.negative_rate = negative_rate
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.precision = precision

    def fit(self, X, y=None):
        """Build the fuzzy graph of X (N, F) and train the map on it."""
        self._validate_params()
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=3)
        a, b = curve_parameters(self.min_dist)
        self.config_ = MapConfig(X.shape[1], self.n_components, tuple(int(h) for h in self.hidden), a, b)
        seed = 0 if self.random_state is None else self.random_state
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's RNG untouched
            torch.manual_seed(seed)
            self.net_ = build_map(self.config_).to(self.device)
        heads, tails, weights = fuzzy_graph(X, self.n_neighbors)
        x = torch.as_tensor(X, device=self.device)
        heads, tails = torch.as_tensor(heads), torch.as_tensor(tails)
        weights = torch.as_tensor(weights)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        steps = self.steps if self.steps is not None else max(500, min(8000, len(X) // 5))
        self.loss_curve_ = []
        for _ in range(steps):
            # Edges in proportion to their weight, as UMAP's epochs-per-sample schedule does.
            pick = torch.multinomial(weights, self.batch_size, replacement=True, generator=generator)
            e_head = self.net_(x[heads[pick]])                      # (B, n_components)
            e_tail = self.net_(x[tails[pick]])                      # (B, n_components)
            loss = self._attraction(e_head, e_tail).mean()
            if self.negative_rate:
                # Negatives: other points of the batch (Sainburg et al.'s in-batch sampling), so a step
                # costs two forward passes whatever the rate.
                shuffle = torch.randint(0, self.batch_size, (self.batch_size * self.negative_rate,),
                                        generator=generator)
                repeated = e_head.repeat(self.negative_rate, 1)     # (B * rate, n_components)
                loss = loss + self.negative_rate * self._repulsion(repeated, e_tail[shuffle]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.loss_curve_.append(float(loss.detach()))
        self.net_.eval()
        return self

    def _squared(self, u, v):
        return ((u - v) ** 2).sum(dim=1).clamp_min(1e-12)

    def _attraction(self, u, v):
        # -log q with q = 1 / (1 + a d^(2b))
        return torch.log1p(self.config_.a * self._squared(u, v) ** self.config_.b)

    def _repulsion(self, u, v):
        # -log(1 - q) = log(1 + a d^(2b)) - log(a d^(2b))
        ad = self.config_.a * self._squared(u, v) ** self.config_.b
        return torch.log1p(ad) - torch.log(ad + 1e-4)

    def transform(self, X) -> np.ndarray:
        """Coordinates (N, n_components) of X (N, F), float64: one forward pass."""
        check_is_fitted(self)
        from .training import autocast_context

        X = validate_data(self, X, dtype=np.float32, reset=False)
        with torch.inference_mode(), autocast_context(torch.device(self.device), self.precision):
            # float64 out, as vaekit.VAE.transform and scikit-learn's own transformers give.
            return self.net_(torch.as_tensor(X, device=self.device)).float().cpu().numpy().astype(np.float64)

    def save(self, path) -> None:
        """`path/config.json` and `path/model.safetensors`; refuses an existing directory."""
        from safetensors.torch import save as save_tensors

        from .runs import atomic_write

        check_is_fitted(self)
        path = Path(path)
        if path.exists():
            raise VaekitError(f"{path} exists: choose a new directory (nothing was written)")
        path.mkdir(parents=True)
        atomic_write(path / "config.json", json.dumps(asdict(self.config_), indent=2).encode())
        atomic_write(path / "model.safetensors",
                     save_tensors({k: v.contiguous().cpu() for k, v in self.net_.state_dict().items()}))

    @classmethod
    def load(cls, path, device: str = "cpu", precision: str = "fp32") -> ParametricUMAP:
        """A fitted map from `save`; loading runs no code from the files."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        try:
            config = MapConfig.from_json((path / "config.json").read_text())
            state = load_file(str(path / "model.safetensors"), device=device)
        except (SafetensorError, OSError, ValueError, TypeError, KeyError) as error:
            raise VaekitError(f"{path} is not a saved ParametricUMAP ({error})") from None
        mapper = cls(n_components=config.n_components, hidden=config.hidden, device=device, precision=precision)
        mapper.config_ = config
        mapper.net_ = build_map(config).to(device)
        try:
            mapper.net_.load_state_dict(state)
        except RuntimeError as error:
            raise VaekitError(f"{path}/model.safetensors does not match its config.json ({error})") from None
        mapper.net_.eval()
        mapper.n_features_in_ = config.input_dim
        return mapper

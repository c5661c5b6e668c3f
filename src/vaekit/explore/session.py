"""The model side of the explorer: one run, the data shown on its map, and what the page asks of them.

Everything goes through the public Run API (encode, decode, reconstruct, score, vary), under one
lock: the HTTP server answers on several threads, and one model serves them all.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np

from ..errors import MAX_OUTPUTS, VaekitError

NEIGHBOURHOOD = 12  # examples whose mean code a click decodes on a 2-D view of a wider latent
TRAVERSE_SPAN = 3.0  # a traversal sweeps a dimension over [-3, 3] prior standard deviations
TRAVERSE_STEPS = 9
VARIATIONS = 5  # text runs: variations of a clicked sentence


class Explorer:
    """A run and the examples on its map: latent means, their 2-D view, labels and scores.

    run: a loaded vaekit Run; data: vaekit.anomaly.Inputs (x as the run reads them, labels, class
    names, sentences). The work done here (encoding, scoring, the view) is done once, at start."""

    def __init__(self, run, data, echo=print):
        self.run, self.data = run, data
        self.lock = threading.Lock()
        started = time.perf_counter()
        self.z, log_var = run.encode(data.x, return_log_var=True)  # (N, D) each
        # KL per dimension, averaged over the data: which dimensions the model uses (Burda et al. 2016's
        # active units read the same signal from the means' variance).
        self.kl_per_dim = (0.5 * (self.z ** 2 + np.exp(log_var) - 1 - log_var)).mean(0)  # (D,)
        self.elbo = run.score(data.x, "elbo", k=1)  # (N,) nats
        self.score_method, self.scores = self._anomaly_scores(echo)  # (N,)
        self.xy, self.view_name = self._view_2d(echo)  # (N, 2)
        self.points_json = self._points_json()
        echo(f"explore: {len(self.z)} examples encoded, scored and mapped in {time.perf_counter() - started:.1f} s")

    # ---- built once ----------------------------------------------------------------------------
    def _anomaly_scores(self, echo) -> tuple[str, np.ndarray]:
        """The run's default anomaly score (as `vaekit anomalies` uses), else the ELBO already at hand."""

        method = self.run.modality.default_score
        if method == "elbo":
            return method, self.elbo
        try:
            return method, self.run.score(self.data.x, method)
        except VaekitError as e:  # the knn scores need the run's training data
            echo(f"explore: note: anomaly score {method} unavailable ({e}); showing the ELBO instead")
            return "elbo", self.elbo

    def _view_2d(self, echo) -> tuple[np.ndarray, str]:
        from ..embedding import MAP_DIR, parametric_view, project_2d

        if self.z.shape[1] > 2 and (self.run.path / MAP_DIR).exists():
            xy, what, _ = parametric_view(self.run, self.z)
            return np.asarray(xy, dtype=np.float64), what
        if self.z.shape[1] > 2 and len(self.z) < 3:
            raise VaekitError(f"a 2-D map of a {self.z.shape[1]}-D latent space needs at least 3 examples")
        xy, what = project_2d(self.z, "pca")
        return np.asarray(xy, dtype=np.float64), what

    def _points_json(self) -> bytes:
        """The map's points as JSON, made once: tens of thousands of points are sent on every page load."""
        def numbers(a):
            return [float(f"{v:.5g}") for v in np.asarray(a, dtype=np.float64)]

        labels = None if self.data.y is None else [int(v) for v in np.asarray(self.data.y)]
        return json.dumps({"x": numbers(self.xy[:, 0]), "y": numbers(self.xy[:, 1]), "label": labels,
                           "score": numbers(self.scores), "elbo": numbers(self.elbo)},
                          separators=(",", ":")).encode()

    def info(self) -> dict:
        """What the page needs to know before it draws: kind, sizes, the view, dimensions' KL."""
        d = self.z.shape[1]
        if d <= 2:
            decoding = "the map is the latent space itself: a click decodes the code under the cursor"
        else:
            decoding = (f"the map is a {self.view_name.split(' of ')[0]} view of the {d}-D latent space: a click "
                        f"decodes the mean code of the {min(NEIGHBOURHOOD, len(self.z))} examples nearest to it "
                        "on the map (not an inverse of the view)")
        classes = self.data.classes
        columns = getattr(self.run, "columns", None)  # tabular runs name their features
        return {"run": str(self.run.path), "kind": self.run.kind, "model": self.run.model.name, "n": len(self.z),
                "latent_dim": d, "view": self.view_name, "decoding": decoding,
                "classes": None if classes is None else [str(c) for c in classes],
                "score_method": self.score_method, "kl_per_dim": [round(float(v), 4) for v in self.kl_per_dim],
                "columns": None if columns is None else list(columns), "variations": hasattr(self.run, "vary"),
                "traverse_span": TRAVERSE_SPAN}

    # ---- asked per request ---------------------------------------------------------------------
    def check_index(self, i) -> int:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.z):
            raise VaekitError(f"index must be a whole number in 0..{len(self.z) - 1}, got {i!r}")
        return i

    def check_code(self, z) -> np.ndarray:
        """A latent code from the page: a list of D finite numbers, as a (1, D) array."""
        d = self.z.shape[1]
        if not isinstance(z, list) or len(z) != d or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in z):
            raise VaekitError(f"a code must be a list of {d} numbers")
        z = np.asarray(z, dtype=np.float32)[None]
        if not np.isfinite(z).all() or np.abs(z).max() > 1e4:
            raise VaekitError("a code's numbers must be finite and within +-1e4")
        return z

    def example(self, i: int) -> dict:
        """Example i beside its reconstruction, with its label, scores and code."""
        i = self.check_index(i)
        x = self.data.x[i:i + 1]
        with self.lock:
            shown = self.run.modality.run_page_items(self.run, self.run.modality.shown(self.run, x))[0]
            recon = self.run.modality.run_page_items(self.run, self.run.reconstruct(x))[0]
        y = self.data.y
        label = None if y is None else int(y[i])
        name = None if label is None else (self.data.classes[label] if self.data.classes else str(label))
        return {"i": i, "input": shown, "reconstruction": recon, "label": label, "label_name": name,
                "score": float(self.scores[i]), "elbo": float(self.elbo[i]), "z": self.z[i].tolist()}

    def code_at(self, x: float, y: float) -> tuple[np.ndarray, list[int]]:
        """The code decoded at map point (x, y): the point itself when the map is the latent space,
        else the mean code of the nearest examples on the map (and which they are)."""
        d = self.z.shape[1]
        if d <= 2:
            return np.asarray([[x, y][:d]], dtype=np.float32), []
        k = min(NEIGHBOURHOOD, len(self.z))
        d2 = ((self.xy - (x, y)) ** 2).sum(1)  # (N,)
        near = np.argpartition(d2, k - 1)[:k]
        return self.z[near].mean(0, keepdims=True).astype(np.float32), sorted(int(i) for i in near)

    def decode_at(self, x: float, y: float) -> dict:
        z, near = self.code_at(x, y)
        return {**self.decode(z), "neighbours": near}

    def decode(self, z: np.ndarray) -> dict:
        """One code (1, D) decoded to the page's item."""
        with self.lock:
            item = self.run.modality.run_page_items(self.run, self.run.decode(z))[0]
        return {"output": item, "z": z[0].tolist()}

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int) -> dict:
        """Outputs along the straight line from code a to code b (both (1, D))."""
        steps = _count("steps", steps, 2, 32)
        t = np.linspace(0, 1, steps, dtype=np.float32)[:, None]  # (steps, 1)
        with self.lock:
            items = self.run.modality.run_page_items(self.run, self.run.decode((1 - t) * a + t * b))  # (steps, D) codes
        return {"outputs": items}

    def traverse(self, z: np.ndarray, dim) -> dict:
        """Outputs of code z with dimension `dim` swept over [-span, span] (the prior's scale)."""
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < z.shape[1]:
            raise VaekitError(f"dim must be a whole number in 0..{z.shape[1] - 1}, got {dim!r}")
        values = np.linspace(-TRAVERSE_SPAN, TRAVERSE_SPAN, TRAVERSE_STEPS, dtype=np.float32)
        codes = np.repeat(z, TRAVERSE_STEPS, 0)  # (steps, D)
        codes[:, dim] = values
        with self.lock:
            items = self.run.modality.run_page_items(self.run, self.run.decode(codes))
        return {"outputs": items, "values": values.tolist(), "kl": float(self.kl_per_dim[dim])}

    def vary(self, i: int, n: int) -> dict:
        """Text runs: n variations of sentence i (codes drawn from its posterior, decoded greedily)."""
        if not self.run.modality.makes_text:
            raise VaekitError(f"variations are for text runs, not {self.run.kind} runs")
        i = self.check_index(i)
        n = _count("n", n, 1, min(20, MAX_OUTPUTS))
        with self.lock:
            sentences = self.run.vary(self.data.x[i], n=n, seed=0)
        return {"i": i, "sentence": self.data.x[i], "variations": sentences}


def _count(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise VaekitError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
    return value

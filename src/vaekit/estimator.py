"""`vaekit.VAE`: a scikit-learn estimator over vaekit's jobs, Trainer and run directory.

    vae = vaekit.VAE(latent_dim=2, epochs=50).fit(X)       # X: (N, F) numbers (kind="tabular")
    vae = vaekit.VAE(categorical=["city"]).fit(df)         # a DataFrame with a column of categories
    z = vae.transform(X)                 # latent means (N, latent_dim)
    vae.score_samples(X)                 # the kind's default anomaly score (higher = more typical; images
                                         # reconstruction+standardised+knn, tables standardised, text elbo-per-token),
                                         # or score_method's
    vae.predict(X)                       # +1 typical / -1 anomalous, threshold from held-out data
    vae.save("runs/my-vae"); vaekit.VAE.load("runs/my-vae")

`fit` holds out `val_fraction` of X (seeded by `random_state`), trains on the rest with the job's
own preparation (tabular: standardisation fitted on the training rows) and the one `Trainer`, then
sets the threshold `offset_` at the `contamination` quantile of the held-out scores, so `predict`
flags about that share of new typical data (IsolationForest's convention: decision_function =
score_samples - offset_). kind="image" takes (N, C, H, W) / (N, H, W) arrays (uint8 or [0, 1]),
kind="text" a list of sentences.

Tables with categorical columns (`categorical`): the columns named there (a DataFrame's column names, or
0-based indices) are read as `vaekit train tabular --categorical` reads them: one-hot after the numeric
features, a softmax each in the decoder; fit learns each column's categories (`categories_`, kept in the run's
standardize.json), and a category fit did not see is read as "any other" and scores as unusual.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import tempfile
import warnings
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from . import api, messages, modalities, runs
from .anomaly import (
    CALIBRATION,
    METHODS,
    NEEDS_REFERENCE,
    REFERENCE,
    build_reference,
    calibration_json,
    check_kind,
    check_method,
    heldout_scores,
    save_reference,
    threshold_for,
)
from .errors import VaekitError
from .models import build_model
from .training import TrainConfig, Trainer, autocast_context

IN_MEMORY = "(arrays given to vaekit.VAE.fit)"  # the data setting of an estimator's run: nothing to re-read


class EstimatorInputError(VaekitError, ValueError):
    """Bad input to the estimator: a VaekitError that scikit-learn also recognises as a ValueError."""


class VAE(ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin, BaseEstimator):
    """A variational autoencoder as a scikit-learn transformer and outlier detector.

    Parameters: kind ("tabular" | "image" | "text"), model (registry name; default: the kind's),
    latent_dim (None: tables half their columns, at least 2; images and text 2), epochs (None: the kind's
    default; tables: 50, and more on a small table for at least 2,000 optimiser steps; images and text: 20;
    a number: exactly that many), batch_size (None: the kind's default), lr, beta (KL weight), random_state,
    contamination (share of held-out data below the threshold), score_method (None: the kind's
    default, chosen in bench/anomaly.py and recorded in bench/RESULTS.md; or "elbo" | "iw" |
    "reconstruction" (image/tabular: minus the squared reconstruction error) | "knn" (minus the
    distance to the nearest training codes) | "reconstruction+knn" (image/tabular: both, standardised;
    "standardised", "mahalanobis", "standardised+knn", "standardised+mahalanobis",
    "reconstruction+standardised+knn": see vaekit.anomaly); not `score`, which scikit-learn reserves
    for a method), k (posterior samples per score),
    val_fraction (held out for the threshold), drop_constant (tabular: leave out
    constant columns instead of refusing them), categorical (tabular: the columns of categories, by name in a
    DataFrame or by 0-based index; None: every column is numeric, and a column of words is refused with the
    categorical=[...] that would take it), image_shape (kind "image" with flat rows), model_options
    and train_options (other model Config / TrainConfig fields), device, precision ("fp32" | "bf16":
    autocast for training and for transform / inverse_transform / sample; scores stay fp32), verbose.

    With categorical columns, X may be a pandas DataFrame (or a 2-D array, NumPy's object dtype for words), and
    inverse_transform and sample name each category: they return a DataFrame of the fitted columns (numeric ones
    in X's units, categorical ones the categories' names) when fit was given a DataFrame with named columns
    (`feature_names_in_`), else an object array of the same cells; without categorical columns, a float array
    as always. Learned: categories_ (column name -> its categories, as fit found them).
    """

    _parameter_constraints: dict = {
        "kind": [StrOptions({"tabular", "image", "text"})],
        "model": [str, None],
        "latent_dim": [Interval(Integral, 1, 4096, closed="both"), None],
        "epochs": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "score_method": [StrOptions(set(METHODS)), None],
        "k": [Interval(Integral, 1, 100_000, closed="both")],
        "val_fraction": [Interval(Real, 0, 1, closed="neither")],
        "drop_constant": ["boolean"],
        "categorical": [list, tuple, None],
        "image_shape": [tuple, list, None],
        "model_options": [dict, None],
        "train_options": [dict, None],
        "device": [str],
        "precision": [StrOptions({"fp32", "bf16", "fp16"})],
        "verbose": ["boolean"],
    }

    def __init__(self, kind="tabular", model=None, latent_dim=None, epochs=None, batch_size=None, lr=1e-3, beta=1.0,
                 random_state=0, contamination=0.01, score_method=None, k=10, val_fraction=0.2, drop_constant=False,
                 categorical=None, image_shape=None, model_options=None, train_options=None, device="cpu",
                 precision="fp32", verbose=False):
        self.kind = kind
        self.model = model
        self.latent_dim = latent_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.random_state = random_state
        self.contamination = contamination
        self.score_method = score_method
        self.k = k
        self.val_fraction = val_fraction
        self.drop_constant = drop_constant
        self.categorical = categorical
        self.image_shape = image_shape
        self.model_options = model_options
        self.train_options = train_options
        self.device = device
        self.precision = precision
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        modalities.get(self.kind).estimator_tags(tags)
        tags.transformer_tags.preserves_dtype = ["float64"]
        tags.non_deterministic = self._method() == "iw"  # IW noise depends on the batch an example is in
        return tags

    def _method(self) -> str:
        """score_method, or the kind's default score when it is None."""
        return self.score_method or modalities.get(self.kind).default_score

    # ---- input -----------------------------------------------------------------------------------
    def _inputs(self, X, reset: bool):
        """X as the job's run takes it: float64 rows, (N, C, H, W) uint8 images, or sentences."""
        try:
            return modalities.get(self.kind).estimator_inputs(self, X, reset)
        except VaekitError as e:
            raise EstimatorInputError(str(e)) from None

    def _held_out(self, x, seed: int):
        """(train, validation) parts of x: `val_fraction` held out, at least one example each side."""
        n = len(x)
        n_val = min(max(1, int(round(n * self.val_fraction))), n - 1)
        if n < 2:
            raise EstimatorInputError(f"VAE needs at least 2 examples (one to train on, one to calibrate), got "
                                      f"{n} sample")
        order = np.random.default_rng(seed).permutation(n)
        pick = (lambda idx: [x[i] for i in idx]) if isinstance(x, list) else (lambda idx: x[idx])
        return pick(order[n_val:]), pick(order[:n_val])

    # ---- fit ---------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train on X (y is ignored: unsupervised); returns self."""
        self._validate_params()
        try:
            check_kind(self._method(), self.kind)  # before training, not after
            if self.categorical:
                modalities.get(self.kind).check_data_option("categorical")
                bad = [c for c in self.categorical if isinstance(c, bool) or not isinstance(c, (str, Integral))]
                if bad:
                    raise VaekitError(f"categorical names columns by name or 0-based index, got {bad[0]!r}")
        except VaekitError as e:
            raise EstimatorInputError(str(e)) from None
        seed = int(np.random.default_rng().integers(2**31)) if self.random_state is None else int(self.random_state)
        x = self._inputs(X, reset=True)
        train_x, val_x = self._held_out(x, seed)
        modality = modalities.get(self.kind)
        data_config = modality.estimator_data_config(self, data=IN_MEMORY, val_fraction=self.val_fraction,
                                                     split_seed=seed)
        try:
            prepared = modality.estimator_training_data(self, train_x, val_x, data_config)
            # epochs given: exactly that many (min_steps off); None: the kind's default (tables: also min_steps)
            epochs = {"epochs": modality.train_defaults.get("epochs", 20)} if self.epochs is None else {
                "epochs": self.epochs, "min_steps": 0}
            train_config = TrainConfig(**{**modality.train_defaults, **epochs, "lr": self.lr,
                                          "beta": self.beta,
                                          "seed": seed, "device": self.device, "progress": self.verbose,
                                          "precision": self.precision,
                                          **({"batch_size": self.batch_size} if self.batch_size else {}),
                                          **(self.train_options or {})})
            name = self.model or modality.default_model
            torch.manual_seed(seed)
            # None: the data's choice where the kind makes one (tables: half the columns), else 2
            latent = {} if self.latent_dim is None and "latent_dim" in prepared.model_options else {
                "latent_dim": self.latent_dim or 2}
            vae = build_model(name, prepared.model_options, **latent,
                              **(self.model_options or {}))
        except (VaekitError, TypeError) as e:
            raise EstimatorInputError(str(e)) from None
        if vae.kind != self.kind:
            raise EstimatorInputError(f"model '{name}' is a {vae.kind} model, not a {self.kind} model")
        threads = torch.get_num_threads()  # TrainConfig.threads sets torch's; give the caller theirs back
        try:
            trainer = Trainer(vae, train_config, prepared.train, prepared.val, None, modality.callbacks(prepared))
            with contextlib.nullcontext() if self.verbose else messages.quiet(), \
                    warnings.catch_warnings(record=True) as said:  # scikit-learn's verbose
                warnings.simplefilter("always")
                self.history_ = trainer.fit()
        finally:
            torch.set_num_threads(threads)
        for w in said:  # what training said (a collapsed code, ...), located at the caller's fit, not in vaekit
            warnings.warn(w.message, w.category, stacklevel=2)
        self.files_ = dict(prepared.files)
        with tempfile.TemporaryDirectory() as tmp:  # the fitted state is exactly a run directory
            _write_run(Path(tmp), api.run_config(modality.name, vae, data_config, train_config), vae, self.files_)
            self.run_ = api.load(tmp, self.device, self.precision)
        self.score_method_ = self._method()
        if self.score_method_ in NEEDS_REFERENCE:  # the training codes, while the training data is at hand
            self.run_.reference = build_reference(self.run_.model, self.run_.prepare(train_x), seed)
        self.heldout_scores_ = self.run_.score(val_x, self.score_method_, self.k)
        self.offset_ = threshold_for(self.heldout_scores_, self.contamination)
        return self

    # ---- use -----------------------------------------------------------------------------------------
    @property
    def _n_features_out(self) -> int:
        return self.run_.model.latent_dim

    def transform(self, X) -> np.ndarray:
        """Latent means (N, latent_dim)."""
        check_is_fitted(self)
        return self.run_.encode(self._inputs(X, reset=False)).astype(np.float64)

    def inverse_transform(self, X):
        """Decoded means of latent codes X (N, latent_dim): rows in raw units (categorical columns: each one's
        likeliest category, by name; see the class docstring), images, or sentences."""
        check_is_fitted(self)
        return self.run_.modality.estimator_outputs(self, self.run_.decode(check_array(X, dtype=np.float32)))

    def impute(self, X, k: int = 100, random_state: int | None = 0, draws: int | None = None):
        """X (tables) with each missing cell (NaN or None) filled by its expected value given the row's other
        cells, from k importance samples (MIWAE's estimate; vaekit.imputation); observed cells as given.
        Categorical columns come back by the categories' names, as from inverse_transform. draws: a list of
        that many completed tables instead, each gap drawn from its conditional distribution (multiple
        imputation)."""
        check_is_fitted(self)
        filled = self.run_.impute(self._inputs(X, reset=False), k=k, seed=random_state, draws=draws)
        if draws is None:
            return self.run_.modality.estimator_outputs(self, filled)
        return [self.run_.modality.estimator_outputs(self, one) for one in filled]

    def score_samples(self, X) -> np.ndarray:
        """Per-example score as score_method says (higher = more typical): a log-likelihood estimate
        in nats for "elbo" and "iw"."""
        check_is_fitted(self)
        method = self._method()
        if (method in NEEDS_REFERENCE and self.run_.reference is None
                and not (self.run_.path / REFERENCE).exists() and self.run_.data_config.data == IN_MEMORY):
            raise VaekitError(f"score_method={method!r} compares with the training data's codes, "
                              "which fit makes: this model was fitted without them; fit it again with this "
                              "score_method")
        return self.run_.score(self._inputs(X, reset=False), method, self.k)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood estimate of X (as GaussianMixture.score), so model selection such as
        GridSearchCV prefers the model that finds held-out data most likely."""
        return float(np.mean(self.score_samples(X)))

    def decision_function(self, X) -> np.ndarray:
        """score_samples - offset_: negative for anomalies."""
        check_is_fitted(self)
        if self.offset_ is None:
            raise VaekitError("this model has no threshold (its validation data could not be read); "
                              "set one with calibrate(X_typical)")
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for typical examples, -1 for anomalies (score below the calibrated threshold)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def calibrate(self, X):
        """Set the threshold from held-out typical data X (the `contamination` quantile of its scores)."""
        check_is_fitted(self, "run_")
        self.heldout_scores_ = self.score_samples(X)
        self.offset_ = threshold_for(self.heldout_scores_, self.contamination)
        return self

    def sample(self, n: int = 1, random_state: int | None = None):
        """n draws from the model: tables rows drawn from p(x | z) (in X's units; categorical columns by the
        categories' names, see the class docstring), images the decoded means of prior draws."""
        check_is_fitted(self)
        return self.run_.modality.estimator_outputs(self, self.run_.sample(n, seed=random_state))

    # ---- run directory ---------------------------------------------------------------------------------
    def save(self, path, overwrite: bool = False) -> Path:
        """Write the fitted model as a vaekit run directory (safetensors + JSON; no pickle)."""
        check_is_fitted(self)
        out = runs.create_run_dir(path, overwrite)
        config = {**self.run_.config, "estimator": {
            "params": _jsonable(self.get_params()), "offset": self.offset_,
            **({"feature_names": list(self.feature_names_in_)} if hasattr(self, "feature_names_in_") else {})}}
        if self.offset_ is not None:
            runs.atomic_write(out / CALIBRATION, calibration_json(self.heldout_scores_, self._method(), self.k))
        runs.atomic_write(out / runs.METRICS, "".join(json.dumps(m) + "\n" for m in self.history_).encode())
        _write_run(out, config, self.run_.model, self.files_)
        if self.run_.reference is not None:  # stamped with the weights just written
            save_reference(out, self.run_.reference)
        return out

    @classmethod
    def load(cls, path, device: str = "cpu") -> VAE:
        """A fitted estimator from a run directory: one saved by `save`, or any vaekit run (its
        threshold then comes from the run's validation split, when its data can be read)."""
        run = api.load(path, device)
        saved = run.config.get("estimator") or {}
        params = saved.get("params") if isinstance(saved.get("params"), dict) else _params_of_run(run)
        unknown = sorted(set(params) - set(inspect.signature(cls).parameters))
        if unknown:
            raise VaekitError(f"{Path(path) / runs.CONFIG} has unknown estimator parameters: {', '.join(unknown)}")
        est = cls(**{**params, "device": device})
        if isinstance(saved.get("feature_names"), list):  # fit was given a DataFrame: the same checks of its columns
            est.feature_names_in_ = np.asarray(saved["feature_names"], dtype=object)
        est.score_method_ = est._method()
        check_method(est.score_method_, est.k)
        autocast_context(run.device, est.precision)  # refuses a precision this device lacks
        run.precision = est.precision
        est.run_ = run
        est.files_ = {p.name: p.read_bytes() for p in run.path.glob("*.json")
                      if p.name in run.modality.run_files}
        metrics = run.path / runs.METRICS
        est.history_ = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
        run.modality.estimator_attributes(est, run)
        try:
            est.heldout_scores_ = heldout_scores(run, est.score_method_, est.k)
            est.offset_ = threshold_for(est.heldout_scores_, est.contamination)
        except VaekitError:
            est.heldout_scores_, est.offset_ = None, None
        return est


def _write_run(out: Path, config: dict, model, files: dict) -> None:
    for name, content in files.items():
        runs.atomic_write(out / name, content)
    runs.save_tensors(out / runs.WEIGHTS, model.state_dict())
    runs.write_json(out / runs.STATUS, {"state": "complete"})
    runs.write_json(out / runs.CONFIG, config)  # last: marks a complete run


def _jsonable(params: dict) -> dict:
    """Parameters as JSON takes them: tuples as lists, NumPy numbers (a column index) as Python ones."""
    return {k: [x.item() if isinstance(x, np.generic) else x for x in v] if isinstance(v, (tuple, list)) else v
            for k, v in params.items()}


def _params_of_run(run) -> dict:
    """Estimator parameters that describe a run trained by `vaekit train` or `vaekit.train`."""
    train = run.config.get("train") or {}
    data = run.config.get("data") or {}
    return {"kind": run.kind, "model": run.model.name, "latent_dim": run.model.latent_dim,
            "epochs": None if train.get("min_steps") else train.get("epochs", 20),  # None: the kind's steps rule
            "batch_size": train.get("batch_size"), "lr": train.get("lr", 1e-3),
            "beta": train.get("beta", 1.0), "random_state": train.get("seed", 0),
            "val_fraction": data.get("val_fraction", 0.2), "categorical": data.get("categorical")}

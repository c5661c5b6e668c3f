"""Tables: numeric feature tables -> standardised float tensors, and the TabularRun API.

Features are standardised with the training split's mean and standard deviation (never the
validation data's), saved in the run as `standardize.json` and applied to everything the run
reads later, so scores and codes of new rows use exactly the training transformation.

Columns named in `categorical` (`--categorical`) hold categories: read as codes into the raw rows, one-hot
after the numeric features in the model's rows (Standardizer.apply), each under a softmax
(distributions.MixedTabular).

Missing cells (empty, NA, NaN, ...; None/NaN in memory) are NaN in the raw and the model's rows: the likelihood
leaves them out and the encoder reads them as 0, the training mean (HI-VAE: Nazabal et al. 2020); nothing is
filled in before training. `vaekit impute` fills them from the trained model (MIWAE's importance-weighted
imputation, Mattei & Frellsen 2019).

Refused with a clear message, never repaired silently: words in other feature columns, infinity, ragged rows,
empty files, rows with no value, and columns that are constant (or empty) on the training split (they carry no
information and cannot be standardised). `drop_constant=True` (`--drop-constant`) leaves constant columns out
instead; the run records which columns it uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import TensorData, TrainingData, split
from ..errors import VaekitError
from ..outputs import Destination
from .base import ArrayModality, Inputs, as_data

SCALER = "standardize.json"


@dataclass(frozen=True)
class TabularDataConfig:
    data: str = "wine"  # wine | breast-cancer | iris (bundled with scikit-learn), a CSV file, .npy/.npz
    val_data: str | None = None  # an explicit validation table instead of a random split
    val_fraction: float = 0.2  # the share of rows held out for validation (without --val-data)
    split_seed: int = 42  # the seed of the random validation split (the same seed, the same split)
    columns: tuple[str, ...] | None = None  # feature columns (names or 0-based indices); default: all but label
    label: str | None = None  # a label column (name or index): kept for plots and scores, never a feature
    id_column: str | None = None  # a row ID column (name or index): written beside scores and codes, never a
    # feature (a column of whole numbers in order is refused as a feature unless --columns names it)
    categorical: tuple[str, ...] | None = None  # columns of categories (words or codes: a city, a product type),
    # one-hot, each under its own softmax; a category the training file lacks is read as "any other" (unusual)
    delimiter: str = ","  # the CSV field separator (";" or a tab for many European exports)
    drop_constant: bool = False  # leave out columns constant on the training split (default: refuse them)
    limit: int | None = None  # use only the first N rows (quick runs)

    def __post_init__(self):
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(str(c) for c in self.columns))
        if self.categorical is not None:
            object.__setattr__(self, "categorical", tuple(str(c) for c in self.categorical))
        if self.limit is not None and self.limit < 2:
            raise VaekitError(f"limit must be at least 2, got {self.limit}")


@dataclass(frozen=True)
class Standardizer:
    """x -> (x - mean) / std per feature, fitted on training rows; `columns` name the features."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label: str | None = None
    classes: tuple[str, ...] | None = None
    inputs: tuple[str, ...] | None = None  # the columns rows come with, when constant ones were dropped
    # Per kept column, from the training rows: the range, and whether every value was a whole number; sampled
    # rows keep to them (None: a run from before they were saved).
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    whole: tuple[bool, ...] | None = None
    # Per kept column: its categories when the column is categorical (--categorical), else None. Such a column
    # holds category codes 0..K-1 in raw rows (K: a category the training file did not have) and is one-hot in
    # the model's rows, K + 1 wide, after the numeric features.
    categories: tuple[tuple[str, ...] | None, ...] | None = None

    @property
    def numeric(self) -> list[int]:
        return [j for j in range(len(self.columns)) if not self.categories or self.categories[j] is None]

    @property
    def categorical(self) -> list[int]:
        return [j for j in range(len(self.columns)) if self.categories and self.categories[j] is not None]

    @property
    def categories_by_name(self) -> dict[str, tuple[str, ...]]:
        """The categorical columns' names -> their categories (what the table readers take)."""
        return {c: k for c, k in zip(self.columns, self.categories or ()) if k is not None}

    @property
    def groups(self) -> tuple[int, ...]:
        """The one-hot width of each categorical column: its categories and one for any other."""
        return tuple(len(self.categories[j]) + 1 for j in self.categorical)

    @property
    def width(self) -> int:
        """Features of the model's rows: the numeric columns and the one-hot groups."""
        return len(self.numeric) + sum(self.groups)

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs or self.columns)

    def select(self, x: np.ndarray) -> np.ndarray:
        """Rows with all input columns (or already only the kept ones) -> the kept features."""
        if x.shape[1] == len(self.columns):
            return x
        return x[:, [self.input_names.index(c) for c in self.columns]]

    @classmethod
    def fit(cls, x: np.ndarray, columns: list[str], drop_constant: bool = False, label=None, classes=None,
            categories: dict | None = None):
        """Fit on training rows x (N, F), NaN where a cell is missing (each statistic over a column's observed
        cells); returns the scaler and the kept column positions. categories: the categorical columns' names ->
        their categories (their cells in x are codes), kept as they are."""
        categories = categories or {}
        observed = ~np.isnan(x)  # (N, F)
        empty = ~observed.any(0)
        if empty.any():
            names = [c for c, k in zip(columns, empty) if k]
            raise VaekitError(f"column(s) with no value on the training rows (every cell missing): "
                              f"{', '.join(names[:10])}; leave them out with --columns")
        with np.errstate(invalid="ignore"):
            mean, std = np.nanmean(x, 0), np.nanstd(x, 0)
        constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
        if constant.all() or (constant.any() and not drop_constant):
            names = [c for c, k in zip(columns, constant) if k]
            raise VaekitError(f"column(s) constant on the training rows: {', '.join(names[:10])}"
                              + ("" if constant.all() else "; pass --drop-constant (drop_constant=True) to leave "
                                 "them out or choose features with --columns"))
        keep = np.flatnonzero(~constant)
        kept = x[:, keep]
        cats = [categories.get(columns[i]) for i in keep]
        shift = [0.0 if c is not None else float(v) for c, v in zip(cats, mean[keep])]  # codes: not scaled
        scale = [1.0 if c is not None else float(v) for c, v in zip(cats, std[keep])]
        whole = [bool((k[~np.isnan(k)] == np.round(k[~np.isnan(k)])).all()) for k in kept.T]
        return cls(tuple(columns[i] for i in keep), tuple(shift), tuple(scale), label,
                   None if classes is None else tuple(classes),
                   None if len(keep) == len(columns) else tuple(columns), tuple(map(float, np.nanmin(kept, 0))),
                   tuple(map(float, np.nanmax(kept, 0))), tuple(whole),
                   tuple(None if c is None else tuple(c) for c in cats) if categories else None), keep

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Raw (N, F) -> the model's rows, float32: numeric columns standardised, then categorical ones one-hot.
        A missing cell (NaN) stays NaN: a numeric one as itself, a categorical one as its whole one-hot group
        (the likelihood leaves NaN out; the encoder reads it as 0)."""
        scaled = ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)
        if not self.categorical:
            return scaled
        parts = [scaled[:, self.numeric]]
        for j, width in zip(self.categorical, self.groups):
            missing = np.isnan(x[:, j])  # (N,)
            codes = np.clip(np.round(np.nan_to_num(x[:, j])), 0, width - 1).astype(np.int64)  # width - 1: any other
            onehot = np.eye(width, dtype=np.float32)[codes]  # (N, width)
            onehot[missing] = np.nan
            parts.append(onehot)
        return np.concatenate(parts, 1)

    def invert(self, x: np.ndarray) -> np.ndarray:
        """The model's rows (N, width) -> raw (N, F): numeric columns in their units, categorical ones the code of
        their likeliest known category."""
        if not self.categorical:
            return x * np.asarray(self.std) + np.asarray(self.mean)
        out = np.empty((len(x), len(self.columns)), np.float64)
        numeric = self.numeric
        out[:, numeric] = x[:, :len(numeric)] * np.asarray(self.std)[numeric] + np.asarray(self.mean)[numeric]
        start = len(numeric)
        for j, width in zip(self.categorical, self.groups):
            out[:, j] = x[:, start:start + width - 1].argmax(1)  # never the "other" slot
            start += width
        return out

    def names_of(self, rows: np.ndarray) -> list[list]:
        """Raw rows (N, F) as cells (of the kept columns, or of every input column): categorical codes as their
        categories' names ("(other)" for a category the training file lacked; a missing cell stays NaN)."""
        rows = np.asarray(rows, dtype=np.float64)
        if not self.categories:
            return rows.tolist()
        named = dict(zip(self.columns, self.categories))
        names = self.columns if rows.shape[1] == len(self.columns) else self.input_names
        cats = [named.get(n) for n in names]
        return [[v if c is None or np.isnan(v) else (c[int(v)] if 0 <= v < len(c) else "(other)")
                 for v, c in zip(row, cats)] for row in rows]

    def like_training(self, x: np.ndarray) -> np.ndarray:
        """Raw rows (N, F) kept to the training rows' range per column, and whole-number columns rounded, as
        synthetic-data tools do (SDV's enforce_min_max_values and enforce_rounding)."""
        if self.low is not None:
            x = np.clip(x, self.low, self.high)
        if self.whole is not None:
            x = np.where(self.whole, np.round(x), x)
        return x

    @property
    def log_jacobian(self) -> float:
        """log |d standardised / d raw|: added to a log-density of standardised rows gives the
        log-density of the raw rows (change of variables)."""
        return -float(np.log(self.std).sum())

    def to_json(self) -> dict:
        return {"columns": list(self.columns), "mean": list(self.mean), "std": list(self.std),
                "label": self.label, "classes": None if self.classes is None else list(self.classes),
                "inputs": None if self.inputs is None else list(self.inputs),
                **({} if self.low is None else {"low": list(self.low), "high": list(self.high),
                                                 "whole": list(self.whole)}),
                **({} if self.categories is None else {"categories": [None if c is None else list(c)
                                                                      for c in self.categories]})}

    @classmethod
    def from_json(cls, obj, path) -> Standardizer:
        try:
            scaler = cls(tuple(obj["columns"]), tuple(map(float, obj["mean"])), tuple(map(float, obj["std"])),
                         obj.get("label"), None if obj.get("classes") is None else tuple(obj["classes"]),
                         None if obj.get("inputs") is None else tuple(obj["inputs"]),
                         *((None,) * 3 if obj.get("low") is None else
                           (tuple(map(float, obj["low"])), tuple(map(float, obj["high"])),
                            tuple(bool(v) for v in obj["whole"]))),
                         None if obj.get("categories") is None else
                         tuple(None if c is None else tuple(map(str, c)) for c in obj["categories"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise VaekitError(f"{path} is not a vaekit standardisation file") from None
        n = len(scaler.columns)
        if not n == len(scaler.mean) == len(scaler.std) or min(scaler.std, default=0) <= 0 or (
                scaler.low is not None and not len(scaler.low) == len(scaler.high) == len(scaler.whole) == n) \
                or (scaler.categories is not None and len(scaler.categories) != n):
            raise VaekitError(f"{path} is damaged: columns, means and scales do not agree")
        return scaler


def read_features(source: str, config: TabularDataConfig, names: list[str] | None = None,
                  categories: dict | None = None):
    """(x (N, F) float64, names, y, classes, ids, categories) of `source`; with `names`, the run's features by
    name. ids: the --id-column's values, when the table has that column. categories: the categorical columns'
    names -> their categories (given: a run's; else read from the table), their cells in x the codes."""
    from ..data.tabular import (
        column_index,
        feature_matrix,
        id_like_columns,
        label_column,
        read_table,
        select_for_run,
        table_categories,
    )

    table = read_table(source, config.delimiter)
    new_run = names is None
    if not new_run:
        x = select_for_run(table, names, categories)
    else:
        columns = list(config.columns) if config.columns else None
        if config.categorical:
            for c in config.categorical:
                if c in (config.label, config.id_column):
                    raise VaekitError(f"column {c!r} is categorical (--categorical) and the label or row ID; "
                                      "a column can be one or the other")
            wanted = [table.column_names[column_index(table, c)] for c in config.categorical]
            if columns is not None:  # a categorical column is a feature, named in --columns or not
                named = {table.column_names[column_index(table, k)] for k in columns}
                columns += [c for c in wanted if c not in named]
            categories = categories or {c: table_categories(table, c) for c in wanted}
        if columns is None and config.id_column is not None:  # every column but the label and the ID
            skip = {column_index(table, c) for c in (config.label, config.id_column) if c is not None}
            columns = [c for i, c in enumerate(table.column_names) if i not in skip]
        x, names = feature_matrix(table, columns, config.label, categories)
        if config.id_column is not None and column_index(table, config.id_column) in \
                [column_index(table, c) for c in names]:
            raise VaekitError(f"column {config.id_column!r} is the row ID (--id-column) and a feature (--columns); "
                              "a column can be one or the other")
        numeric = [j for j, n in enumerate(names) if n not in (categories or {})]
        if not config.columns and (ids_found := id_like_columns(x[:, numeric], [names[j] for j in numeric])):
            raise VaekitError(
                f"{source}: column(s) {', '.join(map(repr, ids_found))} look like row IDs (whole numbers, all "
                "different, in order), which a model would learn as a feature; pass --id-column "
                f"{ids_found[0]} to write it beside the scores and codes instead, or name the features with "
                "--columns (name it there to keep it as a feature)")
    try:
        y, classes = label_column(table, config.label)
    except VaekitError:
        if new_run:
            raise
        y, classes = None, None  # new data need not carry the label column
    ids = None
    if config.id_column is not None:
        try:
            ids = [str(v).strip() for v in table.cells[:, column_index(table, config.id_column)]]
        except VaekitError:
            if new_run:
                raise
    return x, names, y, classes, ids, categories or {}


def training_data(config: TabularDataConfig, run: Path | None = None) -> TrainingData:
    """Train/validation tensors of standardised features; a resumed run reuses its standardize.json (and its
    categories, so the codes mean what they meant)."""
    scaler = None
    if run is not None and (Path(run) / SCALER).exists():
        from ..runs import read_json

        scaler = Standardizer.from_json(read_json(Path(run) / SCALER), Path(run) / SCALER)
    known = None if scaler is None else scaler.categories_by_name
    x, names, y, classes, _, categories = read_features(config.data, config, categories=known or None)
    data = TensorData(torch.from_numpy(x), None if y is None else torch.from_numpy(y))
    if config.limit is not None:
        data = data.subset(torch.arange(min(config.limit, len(data))))
    if config.val_data:
        vx, _, vy, _, _, _ = read_features(config.val_data, config, names, categories)
        train, val = data, TensorData(torch.from_numpy(vx), None if vy is None else torch.from_numpy(vy))
    else:
        train, val = split(data, config.val_fraction, config.split_seed)
    return training_arrays(train, val, config, names, scaler, classes, categories)


def training_arrays(train: TensorData, val: TensorData, config: TabularDataConfig, names: list[str] | None = None,
                   scaler: Standardizer | None = None, classes: list[str] | None = None,
                   categories: dict | None = None) -> TrainingData:
    """Fit the standardisation on `train` (raw float features; categorical columns as codes) unless given,
    apply it to both."""
    import json

    names = names or [str(i) for i in range(train.x.shape[1])]
    if scaler is None:
        scaler, keep = Standardizer.fit(train.x.numpy(), names, config.drop_constant, config.label, classes,
                                        categories)
    else:
        keep = [names.index(c) for c in scaler.columns]

    def standardise(d: TensorData) -> TensorData:
        return TensorData(torch.from_numpy(scaler.apply(d.x.numpy()[:, keep])), d.y)

    dropped = len(names) - len(keep)
    n_cat = len(scaler.categorical)
    what = (f"{len(keep)} standardised features" if not n_cat else
            f"{len(keep) - n_cat} standardised and {n_cat} categorical features ({scaler.width} model inputs)")
    missing = int(np.isnan(train.x.numpy()[:, keep]).sum() + np.isnan(val.x.numpy()[:, keep]).sum())
    cells = (len(train) + len(val)) * len(keep)
    return TrainingData(standardise(train), standardise(val),
                        # latent_dim: half the columns, at least 2 (bench/RESULTS.md, "imputation: a third rule"),
                        # unless --latent-dim / latent_dim= is given
                        {"n_features": scaler.width, "latent_dim": max(2, len(keep) // 2),
                         **({"categories": scaler.groups} if n_cat else {})},
                        {SCALER: (json.dumps(scaler.to_json()) + "\n").encode()},
                        f"{len(train)} training and {len(val)} validation rows of {what}"
                        + (f" ({dropped} constant column(s) left out)" if dropped else "")
                        + (f"; {missing} cell(s) missing ({100 * missing / cells:.1f} %), left out of the likelihood, "
                           "not filled in" if missing else ""))


class TabularModality(ArrayModality):
    """Rows of numeric features, standardised with the training split's scaler (standardize.json in the
    run); codes decode to rows in raw units, and densities are shifted to raw units (`log_density_shift`)."""

    name = "tabular"
    data_names = ("wine", "breast-cancer", "iris")  # data.tabular.NAMED_TABLES
    noun = "tables"
    DataConfig = TabularDataConfig
    default_model = "mlp"
    default_score = "standardised"  # chosen on synthetic anomalies, never the test sets (bench/RESULTS.md, issue 26)
    # Small tables take few steps per epoch: more epochs and smaller batches than the image defaults.
    # One thread: a small MLP's steps are too short to gain from a second, and on a busy machine the
    # parallel regions stall on a descheduled thread (measured: 10x slower with 2 threads under load).
    # At least 2,000 steps: 50 epochs are 150 steps on wine, and more steps filled held-out cells better on every
    # selection table (bench/RESULTS.md, "imputation: a second rule").
    train_defaults = {"epochs": 50, "min_steps": 2000, "batch_size": 64, "threads": 1}
    run_files = (SCALER,)
    eval_k = 1000

    def training_data(self, config: TabularDataConfig, run: Path | None = None) -> TrainingData:
        return training_data(config, run)

    def training_arrays(self, train: TensorData, val: TensorData, config: TabularDataConfig,
                       names: list[str] | None = None, categories: dict | None = None) -> TrainingData:
        return training_arrays(train, val, config, names, categories=categories)

    def read_inputs(self, run, source: str, limit: int | None = None) -> Inputs:
        x, _, y, classes, ids, _ = read_features(source, run.data_config, run.columns, run.scaler.categories_by_name)
        return Inputs(x[:limit], None if y is None else y[:limit], classes,
                      ids=None if ids is None else ids[:limit], id_name=run.data_config.id_column or "id")

    def attach(self, run) -> None:
        from ..runs import read_json

        run.scaler = Standardizer.from_json(read_json(run.path / SCALER), run.path / SCALER)
        if run.scaler.width != run.model.config.n_features or \
                run.scaler.groups != tuple(getattr(run.model.config, "categories", ())):
            raise VaekitError(f"{run.path / SCALER} makes rows of {run.scaler.width} features but the model takes "
                              f"{run.model.config.n_features}: they do not belong together")
        run.log_density_shift = run.scaler.log_jacobian
        run.columns = run.scaler.input_names  # the columns rows come with (constant ones may be dropped)

    def to_model(self, run, x) -> torch.Tensor:
        """Raw rows (N, F) standardised with the run's own scaler."""
        x = np.asarray(x)
        if x.ndim == 1 and len(run.columns) > 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] not in (len(run.columns), len(run.scaler.columns)):
            raise VaekitError(f"this run takes rows of {len(run.columns)} features, got shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise VaekitError(f"features must be numbers, not dtype {x.dtype}")
        if len(x) == 0:
            raise VaekitError("no rows given")
        if np.isinf(x).any():
            row = int(np.argmax(np.isinf(x).any(1)))
            raise VaekitError(f"row {row} holds infinity; vaekit refuses infinite values (NaN marks a missing value)")
        if np.isnan(x).all(1).any():
            row = int(np.argmax(np.isnan(x).all(1)))
            raise VaekitError(f"row {row} has no value (every cell NaN, missing)")
        return torch.from_numpy(run.scaler.apply(run.scaler.select(x.astype(np.float64)))).to(run.device)

    def outputs(self, run, decoded: np.ndarray) -> np.ndarray:
        """Decoded means in raw units, (N, F)."""
        return run.scaler.invert(decoded)

    def sample(self, run, z, mean: bool = False, **options):
        """Rows drawn from p(x | z) for prior draws z, in raw units: synthetic rows that spread like the data,
        kept to the training range and rounded where the training column held whole numbers.
        The decoded means alone (mean=True) leave out the likelihood's noise: on wine their features spread
        33-77 % as much as the data's after 50 epochs at latent 2 (bench/RESULTS.md, 2026-12-07), 66-94 % with
        the defaults of 2026-12-08 (half the columns, at least 2,000 steps)."""
        if mean:
            return self.decode(run, z, **options)
        if options:
            raise VaekitError(f"a tabular run samples rows; it takes no options ({', '.join(options)})")
        return run.scaler.like_training(self.outputs(run, run.batched(run.model.decode_draw, z)))

    def impute(self, run, x, k: int, draws: int | None = None):
        """Raw rows x (N, F) with each missing cell (NaN) filled by its conditional mean given the row's observed
        cells (imputation.conditional_mean, k importance samples), kept to the training range and rounded where
        the training column held whole numbers; a categorical cell becomes its likeliest known category (its
        code). Observed cells come back exactly as given; so does a column the run left out as constant.
        draws: that many completions instead, (draws, N, F), each gap drawn from p(x_mis | x_obs)
        (imputation.conditional_draws: multiple imputation), a categorical one as a drawn category."""
        from ..imputation import conditional_draws, conditional_mean

        x = np.array(x, dtype=np.float64, ndmin=2)
        ready = run.prepare(x)
        if draws is None:
            filled = run.batched(lambda b: conditional_mean(run.model, b, k), ready)[None]  # (1, N, width)
        else:  # (draws, N, width): rows in batches, each batch's draws together
            filled = run.batched(lambda b: conditional_draws(run.model, b, draws, k).transpose(0, 1), ready)
            filled = filled.transpose(1, 0, 2)
        out = np.repeat(x[None], len(filled), 0)  # (draws or 1, N, F)
        keep = [run.columns.index(c) for c in run.scaler.columns] if x.shape[1] != len(run.scaler.columns) else \
            list(range(x.shape[1]))
        for i, one in enumerate(filled):
            kept = run.scaler.like_training(run.scaler.invert(one))  # (N, kept columns), raw units
            out[i][:, keep] = np.where(np.isnan(x[:, keep]), kept, x[:, keep])
        return out[0] if draws is None else out

    def write_imputed(self, run, source: str, inputs: Inputs, filled: np.ndarray, dest: Destination) -> Path:
        """The table of `source` with its missing feature cells filled (`filled`: the features in run.columns,
        (N, F), or (draws, N, F) for multiple imputation), every other cell and column (label, ID, columns the
        run does not use) as it was, as imputed.csv (a CSV file without a header stays without one); draws come
        one after another in one file, each row led by its draw's number (column "draw"), R mice's long form.
        An array file is written as its features, under the run's names."""
        import csv
        import io

        from ..data.tabular import column_positions, read_table
        from ..runs import atomic_write

        out = dest.path(run.path / "imputed.csv")  # refused now, before the table is read again
        table = read_table(source, run.data_config.delimiter)
        tables = [filled] if filled.ndim == 2 else list(filled)
        header, body = None, []
        for one in tables:
            text = [[v if isinstance(v, str) else f"{v:.6g}" for v in row] for row in run.scaler.names_of(one)]
            if table.cells.dtype.kind == "U":  # a CSV file: every cell as read, its gaps filled
                cells = table.cells.astype(object)
                for j, i in enumerate(column_positions(table, run.columns)):
                    gap = np.isnan(inputs.x[:, j])
                    cells[gap, i] = np.array([row[j] for row in text], dtype=object)[gap]
                header, rows = table.names, cells.tolist()
            else:
                header, rows = list(run.columns), text
            body += rows if filled.ndim == 2 else [[len(body) // len(rows) + 1, *row] for row in rows]
        if filled.ndim == 3 and header is not None:
            header = ["draw", *header]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", delimiter=run.data_config.delimiter)
        if header is not None:
            writer.writerow(header)
        writer.writerows(body)
        atomic_write(out, buffer.getvalue().encode())
        return out

    def eval_data(self, run, source: str, limit: int | None, seed: int):
        data = self.read_inputs(run, source, limit)  # (N, F) in the run's columns, raw units
        if len(data.x) < 2:
            raise VaekitError(f"{source} has {len(data.x)} row(s); evaluation needs at least 2")
        x = run.prepare(data.x).float().cpu()  # standardised with the training split's scaler, as in training
        missing = int(np.isnan(data.x).sum())
        return x, data.y, {"settings": {"features": int(x.shape[1]),
                                        "units": "nats per row of standardised features",
                                        **({"missing_cells": missing, "missing_note": "left out of the likelihood "
                                            "(the bounds are of each row's observed cells); the trustworthiness "
                                            "reads a missing cell as its column's mean"} if missing else {})}}

    def eval_metrics(self, run, x, bounds: dict, extra: dict) -> dict:
        # The model sees standardised rows; a density of raw rows differs by the Jacobian.
        return {"iw_nll_raw_units": float(bounds["iw_nll"].mean()) - run.log_density_shift}

    def run_page_items(self, run, outputs) -> list[dict]:
        """Rows for the explorer, categorical columns by their categories' names, a missing cell as "(missing)"."""
        rows = np.asarray(outputs, dtype=np.float64)
        return [{"row": [v if isinstance(v, str) else "(missing)" if np.isnan(v) else float(f"{v:.5g}") for v in row]}
                for row in run.scaler.names_of(rows)]

    def write_samples(self, run, samples, dest: Destination) -> None:
        self._write_rows(run, samples, dest.path(run.path / "samples.csv"), dest)

    def write_reconstructions(self, run, inputs: Inputs, outputs, dest: Destination) -> None:
        self._write_rows(run, outputs, dest.path(run.path / "reconstruct.csv"), dest)

    def write_interpolation(self, run, outputs, dest: Destination, what: str) -> None:
        self._write_rows(run, outputs, dest.path(run.path / "interpolate.csv"), dest)

    @staticmethod
    def _write_rows(run, rows: np.ndarray, out: Path, dest: Destination) -> None:
        """Rows (raw units) as CSV with the run's column names."""
        import csv
        import io

        from ..runs import atomic_write

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(run.scaler.columns)
        writer.writerows([[v if isinstance(v, str) else f"{v:.6g}" for v in row] for row in run.scaler.names_of(rows)])
        atomic_write(out, buffer.getvalue().encode())
        dest.echo(f"wrote {out} ({len(rows)} rows of {rows.shape[1]} features, in the data's own units)")

    def estimator_tags(self, tags) -> None:
        tags.input_tags.two_d_array = True
        tags.input_tags.allow_nan = True  # a missing value, left out of the likelihood

    def estimator_inputs(self, estimator, X, reset: bool):
        """Raw rows (N, F) float64. A table of numbers as scikit-learn's validate_data reads it; with categorical
        columns (estimator.categorical for fit, then its categories_), X (a DataFrame or a 2-D array) is read as
        the command line reads a CSV file (memory_table, feature_matrix): each categorical column's cells as the
        codes of the categories that fit found (categories_), a category fit did not see as "any other"."""
        from sklearn.utils.validation import validate_data

        from ..data.tabular import column_index, feature_matrix, memory_table, table_categories

        if reset:
            estimator.categories_ = {}
        categories = {} if reset else _run_categories(estimator.run_)
        categorical = estimator.categorical if reset else categories
        if not categorical:
            if not _all_numbers(X):  # strings: name every column of words at once, before scikit-learn's message
                _refuse_words(estimator, memory_table(X, [str(c) for c in getattr(X, "columns", ())] or None), set())
            x = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_min_samples=2 if reset else 1,
                              ensure_all_finite="allow-nan")  # NaN: a missing value
            _refuse_empty_rows(x)
            return x
        validate_data(estimator, X, reset=reset, skip_check_array=True)  # only the feature names and their count
        if reset:  # the columns' names as scikit-learn keeps them (a DataFrame's), else their 0-based indices
            table = memory_table(X, [str(c) for c in getattr(estimator, "feature_names_in_", ())] or None)
            categorical = [table.column_names[column_index(table, str(c))] for c in categorical]  # indices -> names
        else:
            table = memory_table(X, estimator.run_.columns)  # the fitted columns, as validate_data has checked
        _refuse_words(estimator, table, set(categorical))
        if reset:
            categories = estimator.categories_ = {c: table_categories(table, c) for c in categorical}
        x = feature_matrix(table, categories=categories, training=False)[0]
        _refuse_empty_rows(x)
        return x

    def estimator_training_data(self, estimator, train, val, data_config) -> TrainingData:
        names = [str(c) for c in getattr(estimator, "feature_names_in_", [])] or None
        return self.training_arrays(as_data(train), as_data(val), data_config, names,
                                    categories=estimator.categories_ or None)

    def estimator_data_config(self, estimator, **settings):
        return TabularDataConfig(**settings, drop_constant=estimator.drop_constant,
                                 categorical=tuple(estimator.categories_) or None)

    def estimator_attributes(self, estimator, run) -> None:
        estimator.n_features_in_ = len(run.columns)
        estimator.categories_ = _run_categories(run)

    def estimator_outputs(self, estimator, rows: np.ndarray):
        """Rows in raw units (N, kept columns): as they are without categorical columns; with them, each
        category by its name, in a DataFrame when fit was given one with named columns, else in an object array."""
        scaler = estimator.run_.scaler
        if not scaler.categorical:
            return rows
        named = scaler.names_of(rows)
        if not hasattr(estimator, "feature_names_in_"):
            return np.array(named, dtype=object)
        import pandas as pd  # fit was given a DataFrame

        return pd.DataFrame(named, columns=list(scaler.columns))


def _run_categories(run) -> dict[str, tuple[str, ...]]:
    """The run's categorical columns -> their categories; a categorical column left out as constant (drop_constant)
    is still read, all of it as "any other", and then dropped."""
    left_out = {c: () for c in run.data_config.categorical or () if c in run.columns}
    return {**left_out, **run.scaler.categories_by_name}


def _refuse_empty_rows(x: np.ndarray) -> None:
    """A row with every cell missing carries nothing to learn or score: refused, with its place."""
    empty = np.isnan(x).all(1)
    if empty.any():
        raise VaekitError(f"X row {int(np.argmax(empty))} has no value (every cell missing): drop that row")


def _all_numbers(X) -> bool:
    """True when X's dtypes (a DataFrame's columns', an array's) are all numbers: no word to look for."""
    dtypes = list(X.dtypes) if hasattr(X, "dtypes") else [getattr(X, "dtype", np.dtype(object))]
    return all(getattr(d, "kind", "O") in "biuf" for d in dtypes)


def _refuse_words(estimator, table, categorical: set[str]) -> None:
    """One message naming every column of words that `categorical` does not name, with the categorical=[...]
    that models them as categories."""
    from ..data.tabular import WORD_NOTES, word_columns

    found = word_columns(table, categorical)
    if not found:
        return
    listed = ", ".join(f"{name!r} ({word[:30]!r} in row {row}"
                       + (f"; {WORD_NOTES[kind]})" if kind in WORD_NOTES else ")") for name, word, row, kind in found)
    fix = "leave those columns out of X"
    few = [name for name, _, _, kind in found if kind == "categories"]
    if few:  # an ID, a date or free text is no category: only columns of a few different words are offered
        others = ", and leave the others out of X" if len(few) < len(found) else ""
        fix = (f"fit with categorical={list(estimator.categorical or ()) + few!r} to keep "
               + ", ".join(map(repr, few)) + f" as categories{others}")
    raise VaekitError(f"X has {len(found)} column(s) of words, not numbers: {listed}; words are features only as "
                      f"categories: {fix}")


TABULAR = TabularModality()

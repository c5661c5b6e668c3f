"""The modality protocol: everything that one kind of data (images, sentences, tables, ...) means to vaekit.

A modality answers, for its kind of data, the questions the kind-free core asks:

- data: its data config (a frozen dataclass), how data are read and split (`training_data`), what to show
  each epoch (`callbacks`), how new inputs are read for a trained run (`read_inputs`);
- the run: the files it keeps beside the weights (`attach`: a tokenizer, a standardisation), how inputs
  become model input (`to_model`) and decoded means become outputs (`outputs`);
- evaluation: the importance samples it uses (`eval_k`), its own figures (`eval_metrics`), the order
  that batches examples of like cost (`example_lengths`), the memory a decoder pass takes (`decode_cost`);
- anomalies and export: which scores make sense (`has_reconstruction`), how the most anomalous
  examples are shown (`show_examples`), what an ONNX manifest adds (`export_manifest`);
- the scikit-learn estimator: its input tags and how X becomes the modality's input (`estimator_inputs`).

The core never compares a kind's name: it asks `vaekit.modalities.get(kind)`. A new kind of data is
one subclass of `Modality` (or `ArrayModality` for continuous arrays) and `modalities.register(...)`.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import TRANSFORMS, TensorData, TrainingData
from ..errors import VaekitError
from ..outputs import Destination
from ..runs import atomic_write

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """New data for a run: x as the run's `prepare` takes it, optional labels, their class names, the
    sentences (text runs) shown beside scores, and what names each example in its source (`ids`: an image's
    file, a table's ID column), written beside scores and codes under the column `id_name`."""

    x: object
    y: np.ndarray | None
    classes: list[str] | None
    texts: list[str] | None = None
    ids: list[str] | None = None
    id_name: str = "id"


class Modality:
    """One kind of data. Subclasses set the class attributes and implement the data methods."""

    name: str = ""  # the kind, as `vaekit train KIND` and config.json's "kind" spell it
    article: str = "a"  # "a text run", "an image run"
    noun: str = "data"  # what it reads, for messages: "images", "sentences", "tables"
    DataConfig: type = type(None)  # the frozen dataclass of its data settings
    default_model: str = ""
    default_score: str = "elbo"  # `vaekit anomalies` without --score
    train_defaults: dict = {}  # TrainConfig fields this kind trains with by default
    option_configs: dict = {}  # train() options that shape the data, not the model: name -> config dataclass
    seed_model: str = ""  # the design document's architecture for this kind, if it has one
    run_files: tuple[str, ...] = ()  # files beside the weights that the run needs (tokenizer.json, ...)
    eval_k: int = 1000  # importance samples of `evaluate`'s IW bound
    has_reconstruction: bool = True  # the reconstruction scores need continuous inputs
    makes_text: bool = False  # outputs are sentences (variations, rating sheets)
    plots_latent_means: bool = False  # evaluate draws a 2-D latent's means
    probe_inputs: bool = True  # evaluate's probes compare codes with a classifier on the raw inputs
    data_names: tuple[str, ...] = ()  # named data sets ("mnist", "ptb:valid"): names, never paths
    # Data config fields that may name a file or folder; a run records them absolute (`absolute_paths`).
    path_fields: tuple[str, ...] = ("data", "val_data", "data_dir")

    def __repr__(self) -> str:
        return f"<modality {self.name!r}>"

    # ---- data ----------------------------------------------------------------------------------
    def training_data(self, config, run: Path | None = None, **data_options) -> TrainingData:
        """Train/validation data for training or resuming (a resumed run reuses its run files)."""
        raise NotImplementedError

    def callbacks(self, prepared: TrainingData) -> list:
        """What the trainer calls each epoch for this kind (plots, samples, metrics)."""
        from ..training.callbacks import CollapseMonitor, TrainingCurve

        return [TrainingCurve(), CollapseMonitor(prepared.val)]

    @property
    def data_options(self) -> tuple[str, ...]:
        return tuple(self.option_configs)

    def read_inputs(self, run, source: str, limit: int | None = None) -> Inputs:
        """New data for `run` read from `source` (a file or a named set, its test split by default)."""
        raise NotImplementedError

    def check_data_option(self, name: str) -> None:
        """Refuse a data option (data_dir, column) this kind does not have, saying what it is for."""
        fields = getattr(self.DataConfig, "__dataclass_fields__", {})
        if name in fields:
            return
        if name == "data_dir":
            raise VaekitError(f"--data-dir is where named data sets are looked up; {self.article} {self.name} "
                              f"run reads its {self.noun} from the path given to --data")
        if name == "column":
            raise VaekitError(f"--column names the CSV column of a text run's sentences; this {self.name} run "
                              "has none")
        raise VaekitError(f"{self.article} {self.name} run has no data setting {name!r}")

    # ---- where a run's data are ----------------------------------------------------------------------
    def is_named(self, value: str) -> bool:
        """True when a data setting names a data set ("mnist:test") rather than a path (names win)."""
        return value.partition(":")[0] in self.data_names

    def _paths(self, config):
        """(field, value) of the data config's settings that are paths (not names, not empty)."""
        for name in self.path_fields:
            value = getattr(config, name, None)
            if isinstance(value, str) and value and (name == "data_dir" or not self.is_named(value)):
                yield name, value

    def absolute_paths(self, config):
        """The data config with every path that exists made absolute, so that a run records where its
        data are and can be resumed and used from any folder (a relative path means another file there)."""
        changes = {name: str(Path(value).expanduser().resolve()) for name, value in self._paths(config)
                   if Path(value).expanduser().exists()}
        return dataclasses.replace(config, **changes) if changes else config

    def resolve_paths(self, config, run: Path):
        """The data config of a run read from `run`, its relative paths (runs written before paths were
        recorded absolute) resolved: against the current folder as before, else against the run directory
        and the folders above it (where `vaekit train` was most likely typed), the first that exists. A
        data folder that is nowhere (the run moved to another machine) is dropped, so that $VAEKIT_DATA and
        the download cache are searched instead."""
        changes = {}
        for name, value in self._paths(config):
            path = Path(value).expanduser()
            if path.is_absolute():
                found = path if path.exists() else None
            else:
                where = [Path.cwd(), *[run.resolve(), *run.resolve().parents][:5]]
                found = next((folder / path for folder in where if (folder / path).exists()), None)
            if found is not None:
                changes[name] = str(found.resolve()) if found != path else value
            elif name == "data_dir":
                changes[name] = None
                log.info("%s: the data folder %s it was trained from is not there; looking in %s", run, value,
                         "$VAEKIT_DATA and the download cache" if os.environ.get("VAEKIT_DATA") else
                         "the download cache ($VAEKIT_DATA is not set)")
        return dataclasses.replace(config, **changes) if changes else config

    # ---- a trained run ---------------------------------------------------------------------------
    def attach(self, run) -> None:
        """Read the run's own files (tokenizer, standardisation) into `run`, checked against its model."""

    def to_model(self, run, x) -> Tensor:
        """Inputs as the model takes them, on the run's device, shapes and values checked."""
        raise NotImplementedError

    def outputs(self, run, decoded: np.ndarray):
        """Decoded means (N, ...) as the user receives them (e.g. raw units)."""
        return decoded

    def decode(self, run, z: Tensor, **options):
        """Outputs for codes z (N, D): by default the decoded means, as `outputs` gives them."""
        if options:
            raise VaekitError(f"{self.article} {self.name} run decodes to means; it takes no options "
                              f"({', '.join(options)})")
        return self.outputs(run, run.batched(run.model.decode_mean, z))

    def sample(self, run, z: Tensor, mean: bool = False, **options):
        """Outputs for prior draws z (N, D): `decode`'s (images: the decoded means, text: sentences). Tables
        override it to draw rows from p(x | z); `mean` asks for the means there, and is refused elsewhere."""
        if mean:
            raise VaekitError(f"mean=True (--mean) is for tables; {self.article} {self.name} run samples "
                              f"{'sentences' if self.makes_text else 'images'} as they are")
        return self.decode(run, z, **options)

    def reconstruct(self, run, x: Tensor, **options):
        if options:
            raise VaekitError(f"{self.article} {self.name} run reconstructs means; it takes no options "
                              f"({', '.join(options)})")
        return self.outputs(run, run.batched(run.model.reconstruct, x))

    def impute(self, run, x, k: int, draws: int | None = None):
        """Inputs x with their missing values filled in from the model (tables, where a cell can be missing)."""
        raise VaekitError(f"{self.article} {self.name} run has no missing values to fill in: imputation is for "
                          "tables (a tabular run)")

    def vary_defaults(self) -> dict:
        """Run.vary's settings when not given: the spread and the options `vary` takes."""
        return {"spread": 1.0}

    def vary(self, run, x, z: np.ndarray, *args, **options):
        """Variations of the input x from codes z (n, D) drawn near its own: decoded (args and options
        are run.decode's)."""
        return run.decode(z, *args, **options)

    # ---- evaluation ------------------------------------------------------------------------------
    def eval_data(self, run, source: str, limit: int | None, seed: int) -> tuple[Tensor, np.ndarray | None, dict]:
        """(x as the model takes it (CPU), labels or None, extra facts for the report) for `source`."""
        data = self.read_inputs(run, source, limit)
        if len(data.x) < 2:
            raise VaekitError(f"{source} has {len(data.x)} example(s); evaluation needs at least 2")
        return run.prepare(data.x).float().cpu(), data.y, {}

    def eval_metrics(self, run, x: Tensor, bounds: dict, extra: dict) -> dict:
        """Figures of this kind beside the kind-free ones (bits per dimension, perplexity, ...)."""
        return {}

    def example_lengths(self, x: Tensor) -> Tensor | None:
        """(N,) sizes by which evaluation batches examples of like cost together, or None."""
        return None

    def decode_cost(self, model, batch: Tensor) -> float:
        """Floats of one decoder pass per example: its outputs times 64 channels of activations."""
        return 64.0 * batch[0].numel()

    # ---- anomalies, export -------------------------------------------------------------------------
    def show_examples(self, run, data: Inputs, order: np.ndarray, scores: np.ndarray, out: Path,
                      title: str | None = None) -> list[str] | None:
        """Write what the most anomalous examples (indices `order`, most anomalous first) look like into
        `out`, with their scores (`title`: what they are); lines to print."""
        return None

    anomaly_files: tuple[str, ...] = ()  # what show_examples writes, named in `vaekit anomalies`' last line
    draws_images: bool = False  # `vaekit manifold`: a grid of decoded images

    def codec(self):
        """How `vaekit compress` codes this kind's data (a vaekit.compression.Codec), or None: not compressible."""
        return None

    # ---- the explorer's page (vaekit explore) ----------------------------------------------------------
    def shown(self, run, x):
        """Inputs as the page shows them (images in [0, 1], sentences, raw rows)."""
        return np.asarray(x, dtype=np.float64)

    def page_items(self, outputs) -> list[dict]:
        """Inputs as shown, or decoded outputs, as the page's JSON items: by default table rows."""
        return [{"row": [float(f"{v:.5g}") for v in np.ravel(row)]} for row in np.asarray(outputs, dtype=np.float64)]

    def run_page_items(self, run, outputs) -> list[dict]:
        """page_items for one run's outputs (what the explorer calls): a kind whose items need the run's own
        files (tables: the categories' names) overrides this."""
        return self.page_items(outputs)

    def data_defaults(self, data, model: str) -> dict:
        """Training settings that depend on the data (the CLI applies them where not typed)."""
        return {}

    # ---- what the verbs write (vaekit sample / reconstruct / interpolate) ---------------------------
    def write_samples(self, run, samples, dest: Destination) -> None:
        """Prior samples: by default an array file inside the run (plots/samples.npy) or at --out."""
        self._write_array(samples, dest.path(run.path / "plots" / "samples.npy"), dest, "samples")

    def write_reconstructions(self, run, inputs: Inputs, outputs, dest: Destination) -> None:
        self._write_array(outputs, dest.path(run.path / "plots" / "reconstruct.npy"), dest, "reconstructions")

    def write_interpolation(self, run, outputs, dest: Destination, what: str) -> None:
        self._write_array(outputs, dest.path(run.path / "plots" / "interpolate.npy"), dest, what)

    @staticmethod
    def _write_array(x, out: Path, dest: Destination, what: str) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(x))
        atomic_write(out, buffer.getvalue())
        dest.echo(f"wrote {out} ({what}, shape {np.asarray(x).shape})")

    def export_manifest(self, model) -> dict:
        """What an ONNX manifest adds for this kind (special token ids, ...)."""
        return {}

    # ---- the scikit-learn estimator ------------------------------------------------------------------
    def estimator_tags(self, tags) -> None:
        """Set scikit-learn's input tags for an estimator of this kind."""

    def estimator_inputs(self, estimator, X, reset: bool):
        """X as this kind's run takes it; raise VaekitError (the estimator rewords it) when it cannot."""
        raise NotImplementedError

    def estimator_training_data(self, estimator, train, val, data_config) -> TrainingData:
        """The trainer's data from the estimator's train/validation inputs."""
        raise NotImplementedError

    def estimator_data_config(self, estimator, **settings):
        """The data config an estimator's run records (its data live in memory)."""
        return self.DataConfig(**settings)

    def estimator_attributes(self, estimator, run) -> None:
        """scikit-learn's learned attributes that depend on the kind (n_features_in_, ...)."""

    def estimator_outputs(self, estimator, outputs):
        """inverse_transform's and sample's outputs as the estimator returns them: by default as the run gives
        them (tables name their categories)."""
        return outputs


class ArrayModality(Modality):
    """Continuous arrays (N, ...) of floats: tables, images, signals. Decoded means come back as arrays,
    the reconstruction scores apply, and a new kind of array data needs only its data methods."""

    def to_model(self, run, x) -> Tensor:
        x = torch.as_tensor(np.asarray(x))
        expected = tuple(run.model.example_input(1).shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise VaekitError(f"this run takes inputs of shape {expected}, got {tuple(x.shape[1:])}")
        x = x.float()
        if not torch.isfinite(x).all():
            raise VaekitError("the inputs contain NaN or infinite values")
        return x.to(run.device)

    def estimator_inputs(self, estimator, X, reset: bool):
        x = np.asarray(X, dtype=np.float64)
        if not np.isfinite(x).all():
            raise VaekitError("X holds NaN or infinity")
        return x

    def estimator_training_data(self, estimator, train, val, data_config) -> TrainingData:
        return self.training_arrays(as_data(train), as_data(val), data_config)

    def training_arrays(self, train: TensorData, val: TensorData, config) -> TrainingData:
        """The trainer's data from tensors already in memory."""
        raise NotImplementedError


def as_data(array, transform: str = "none") -> TensorData:
    """A NumPy array as TensorData (transform: how a batch becomes model input, data.TRANSFORMS)."""
    return TensorData(torch.from_numpy(np.ascontiguousarray(array)), None, transform)


def model_ready(data: TensorData) -> Tensor:
    """Data as the model takes it, deterministically: a dynamically binarised set is read as its
    grey levels (the reference codes and held-out scores must not depend on a random draw)."""
    return TRANSFORMS["rescale" if data.transform == "binarize" else data.transform](data.x)

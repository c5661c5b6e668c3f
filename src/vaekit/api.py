"""The Python API: train a model into a run directory, load a run and use it.

    run = vaekit.train(ImageDataConfig("digits"), out="runs/digits")
    run = vaekit.load("runs/digits")
    z = run.encode(images)            # latent means, (N, D)
    x = run.decode(z)                 # decoded means, (N, C, H, W) in [0, 1]
    x = run.sample(16); r = run.reconstruct(images)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed, modalities, runs, stamps
from .errors import MAX_OUTPUTS, VaekitError, check_count, check_finite
from .models import MODELS, build_model
from .schema import check_fields
from .summary import model_summary
from .training import TrainConfig, Trainer, autocast_context, check_runtime, refine_config, resolve_device
from .version import __version__


def from_dict(cls, values: Any, what: str):
    """A frozen config dataclass from JSON, refusing unknown keys and wrong types."""
    values = check_fields(cls, values, what)  # unknown keys, wrong types, non-finite numbers
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise VaekitError(f"{what} has an invalid value ({e})") from None


class Run:
    """A trained model loaded from its run directory, in eval mode, for any kind of data: its modality
    (`run.modality`, vaekit.modalities) says how inputs become model input and codes become outputs."""

    reference = None  # the knn scores' training codes (anomaly.run_reference), made when first needed
    batch_size = 1000  # examples per forward pass of encode, decode, reconstruct (vaekit VERB --batch-size)
    log_density_shift = 0.0  # added to density scores: a tabular run's change of variables to raw units

    def __init__(self, path: str | Path, device: str = "cpu", precision: str = "fp32"):
        self.path = Path(path)
        self.config = runs.read_config(self.path)
        self.modality = modalities.get(self.config.get("kind"))
        self.kind = self.modality.name
        # The training settings do not shape the model, but config.json is checked whole (types,
        # unknown keys, non-finite numbers); their ranges are TrainConfig's to check when the run
        # trains again (resume), so a run saved with a setting refused since still loads.
        check_fields(TrainConfig, self.config.get("train"), "config.json 'train'")
        self.model = model_from_config(self.config)
        weights = runs.read_weights(self.path)  # or why there are none (a failed run)
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as e:
            raise VaekitError(f"{self.path / runs.WEIGHTS} does not fit the model in config.json "
                              f"({str(e).splitlines()[0]})") from None
        self.device = resolve_device(device)
        # Encoding, decoding and sampling run under this autocast precision: "bf16" is ~4x faster on
        # CPUs with native bf16 (latent means then agree with fp32 to about 1 %); scores stay fp32.
        self.precision = precision
        autocast_context(self.device, precision)  # refuses a precision this device lacks, here
        self.model.to(self.device).eval()
        data_config = from_dict(self.modality.DataConfig, self.config.get("data"), "config.json 'data'")
        self.data_config = self.modality.resolve_paths(data_config, self.path)  # an old run's relative paths
        self.modality.attach(self)  # the run's own files: tokenizer, standardisation

    def __repr__(self) -> str:
        return (f"Run({str(self.path)!r}, kind={self.kind!r}, model={self.model.name!r}, "
                f"latent_dim={self.model.latent_dim})")

    def read_from(self, data_dir: str | None = None, column: str | None = None) -> Run:
        """Where this run reads data it is given later (evaluate, reconstruct, anomalies, ...), in place of
        the settings it was trained with: data_dir, the folder of named data sets (a run that has moved);
        column, the CSV column holding a text run's sentences. Returns the run."""
        changes = {k: v for k, v in (("data_dir", data_dir), ("column", column)) if v is not None}
        for name in changes:
            self.modality.check_data_option(name)
        self.data_config = dataclasses.replace(self.data_config, **changes)
        return self

    def read(self, source: str, limit: int | None = None) -> modalities.Inputs:
        """New data from `source` (a file or a named set; its test split by default), read the way this
        run's kind reads data: `.x` as `prepare` takes it, `.y` labels, `.classes`, `.texts` (sentences)."""
        return self.modality.read_inputs(self, source, limit)

    def prepare(self, x) -> torch.Tensor:
        """Inputs as the model takes them (images, sentences or rows), shapes and values checked."""
        return self.modality.to_model(self, x)

    def batched(self, fn, x: torch.Tensor, batch_size: int | None = None, to_numpy: bool = True):
        """fn over x in batches (default: the run's batch_size), without gradients, under the run's
        precision; fp32 on the CPU."""
        batch_size = batch_size or self.batch_size
        with torch.inference_mode(), autocast_context(self.device, self.precision):
            out = torch.cat([fn(x[i:i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)])
        return out.numpy() if to_numpy else out

    def encode(self, x, return_log_var: bool = False):
        """Latent means (N, D) of inputs x; with return_log_var also their log-variances."""
        x = self.prepare(x)
        if not return_log_var:
            return self.batched(lambda b: self.model.encode(b).mean, x)
        # One encoder pass per batch for both: (N, 2D) = [mean | log_var].
        both = self.batched(lambda b: torch.cat([(q := self.model.encode(b)).mean, q.log_var], 1), x)
        d = self.model.latent_dim
        return both[:, :d], both[:, d:]

    def codes(self, z) -> torch.Tensor:
        """Latent codes z (N, D) as a float tensor on the run's device, shape checked."""
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=self.device)
        if z.dim() != 2 or z.shape[1] != self.model.latent_dim:
            raise VaekitError(f"latent codes must have shape (N, {self.model.latent_dim}), got {tuple(z.shape)}")
        return z

    def decode(self, z, *args, **options):
        """Outputs for latent codes z (N, D): decoded means (images in [0, 1], rows in raw units), or
        sentences for a text run (options: a DecodeConfig)."""
        return self.modality.decode(self, self.codes(z), *args, **options)

    def sample(self, n: int, seed: int | None = None, temperature: float = 1.0, *args, **options):
        """n outputs from prior draws: images their decoded means, text sentences (options: a DecodeConfig),
        tables rows drawn from p(x | z) in raw units (mean=True: the decoded means, which spread less than
        the data)."""
        return self.modality.sample(self, self.codes(self.prior_draws(n, seed, temperature).numpy()), *args,
                                    **options)

    def prior_draws(self, n: int, seed: int | None = None, temperature: float = 1.0) -> torch.Tensor:
        """n codes (n, D) from the prior N(0, temperature^2 I); seed: torch's global seed first."""
        n = check_count("n (the number of samples)", n, 1, MAX_OUTPUTS)
        temperature = check_finite("temperature", temperature, 0)
        if seed is not None:
            torch.manual_seed(seed)
        return temperature * torch.randn(n, self.model.latent_dim)

    def reconstruct(self, x, *args, **options):
        """Each input decoded from its posterior mean."""
        return self.modality.reconstruct(self, self.prepare(x), *args, **options)

    def impute(self, x, k: int = 100, seed: int | None = 0, draws: int | None = None):
        """Rows x (N, F) of a tabular run with each missing cell (NaN) filled by its expected value given the
        row's observed cells (vaekit.imputation: k importance samples from the encoder's posterior; MIWAE,
        Mattei & Frellsen 2019), in raw units, kept to the training range and rounded in whole-number
        columns; a categorical cell as its likeliest category's code. Observed cells are returned as given.
        draws: that many completed tables instead, (draws, N, F), each gap drawn from its conditional
        distribution (multiple imputation: analyse each table and pool the results by Rubin's rules)."""
        k = check_count("k (importance samples)", k, 1, 100_000)
        if draws is not None:
            draws = check_count("draws (completed tables)", draws, 1, 1000)
        if seed is not None:
            torch.manual_seed(seed)
        return self.modality.impute(self, x, k, draws)

    def vary(self, x, n: int = 5, spread: float | None = None, *args, seed: int | None = None, **options):
        """n variations of one input `x` (a sentence, an image, a row): codes drawn from its posterior
        with the standard deviation scaled by `spread` (0 = the posterior mean every time), each made
        into an output by the kind (text: the sentence edited under that code, vaekit.editing, or
        decoded from it with a DecodeConfig). Unset spread and settings take the kind's defaults
        (text: vaekit.variations)."""
        defaults = self.modality.vary_defaults()  # {"spread": ..., and the kind's settings}
        default_spread = defaults.pop("spread")
        spread = default_spread if spread is None else spread
        args = tuple(a for a in args if a is not None)
        options = {k: v for k, v in options.items() if v is not None}
        if not args and not options:
            options = defaults  # the kind's way of making variations (text: editing)
        n = check_count("n (the number of variations)", n, 1, MAX_OUTPUTS)
        spread = check_finite("spread", spread, 0)
        if seed is not None:
            torch.manual_seed(seed)
        batch = [x] if isinstance(x, str) else np.asarray(x)[None]
        mean, log_var = self.encode(batch, return_log_var=True)
        mean, std = torch.from_numpy(mean), torch.from_numpy(log_var).mul(0.5).exp()
        z = mean + spread * std * torch.randn(n, self.model.latent_dim)  # (n, D)
        return self.modality.vary(self, x, z.numpy(), *args, **options)

    def interpolate(self, a, b, steps: int = 5, *args, **options):
        """Outputs decoded along the straight line between the posterior means of a and b (two
        inputs of the run's kind: sentences, images or rows), `steps` points including both ends."""
        steps = check_count("steps", steps, 2, MAX_OUTPUTS)
        pair = [a, b] if isinstance(a, str) else np.stack([np.asarray(a), np.asarray(b)])
        z = self.encode(pair)
        t = np.linspace(0, 1, steps)[:, None]
        return self.decode(((1 - t) * z[0] + t * z[1]).astype(np.float32), *args, **options)

    def unknown_words(self, sentence: str) -> list[str]:
        """Words of `sentence` that are not in a text run's vocabulary (they become <unk>)."""
        if not self.modality.makes_text:
            raise VaekitError(f"{self.path} is {self.modality.article} {self.kind} run: it has no vocabulary")
        return self.tokenizer.unknown_words(sentence)

    def score(self, x, method: str = "elbo", k: int = 10, seed: int = 0) -> np.ndarray:
        """Per-example log-likelihood estimate (N,) in nats: the ELBO averaged over k posterior
        draws, or the importance-weighted bound with k samples (method "iw"); or, for image and
        tabular runs, minus the squared reconstruction error of the posterior mean ("reconstruction",
        not nats); or distances to the training data's codes ("knn", "reconstruction+knn"; see
        vaekit.anomaly). Low = anomalous."""
        from .anomaly import run_scores

        return run_scores(self, self.prepare(x), method, k, seed)

    def compress(self, x, chains: int | None = None) -> bytes:
        """x as a lossless bits-back code (BB-ANS, vaekit.compression): images as integer arrays,
        a text as str or bytes. Only this run decompresses it."""
        from .compression import compress

        return compress(self, x, chains)

    def decompress(self, blob: bytes):
        """The data that `compress` was given, exactly (an array, or the str / bytes of a text)."""
        from .compression import decompress

        return decompress(self, blob)


def load(path: str | Path, device: str = "cpu", precision: str = "fp32") -> Run:
    """Load a run directory (config.json + model.safetensors). Never executes code from it.

    precision: "fp32", or "bf16" / "fp16" autocast for encode, decode, sample and reconstruct."""
    return Run(path, device, precision)


def model_from_config(config: dict):
    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise VaekitError("config.json has no valid 'model' entry")
    if model["name"] not in MODELS:
        raise VaekitError(f"config.json names an unknown model {model['name']!r}")
    config_cls = MODELS[model["name"]][0].Config
    options = check_fields(config_cls, model.get("config", {}), "config.json 'model.config'")
    # A field added since the run was saved takes the value that rebuilds the model it was trained as,
    # not today's default (e.g. an untied text-rnn from before tie_embeddings).
    options = {**getattr(config_cls, "OLD_RUN_VALUES", {}), **options}
    try:
        return build_model(model["name"], **options)
    except (TypeError, ValueError) as e:
        raise VaekitError(f"config.json has an invalid model config ({e})") from None


def train(data, out: str | Path | None = None, model: str | None = None, train: TrainConfig = TrainConfig(),
          overwrite: bool = False, echo=print, **model_options) -> Run | Trainer:
    """Train a VAE on `data` (an ImageDataConfig, TextDataConfig, TabularDataConfig or the data config of a
    registered modality: its type picks the kind).

    With `out`, writes a run directory and returns the loaded Run; without, trains in memory and
    returns the Trainer (the model is `trainer.model`). Everything the user can get wrong is checked
    before the run directory is created.
    """
    modality = modalities.for_data(data)
    data = modality.absolute_paths(data)  # the run records where its data are: usable from any folder
    model = model or modality.default_model
    if train.trainable != "all":
        raise VaekitError("a new model trains all its parameters; to fit a trained run's encoder again "
                          "against its fixed decoder, use refine (vaekit refine RUN)")
    ctx = distributed.setup(train.device)  # several processes (torchrun, --nproc): rank 0 writes the run
    echo = echo if ctx.is_main else (lambda *a, **k: None)
    check_runtime(train)
    # Options that shape the data rather than the model (text: `tokenizer=TokenizerConfig(...)`).
    data_options = {k: model_options.pop(k) for k in modality.data_options if k in model_options}
    prepared = modality.training_data(data, **data_options)
    torch.manual_seed(train.seed)  # the initial weights are part of what the seed reproduces
    vae = build_model(model, prepared.model_options, **model_options)
    if vae.kind != modality.name:
        raise VaekitError(f"model '{model}' is {_a(vae.kind)} model, not {_a(modality.name)} model")
    echo(model_summary(vae))
    echo(f"data: {prepared.description}")
    run = None
    if out is not None:
        run = ctx.on_main(lambda: _new_run_dir(out, overwrite, prepared, vae, modality.name, data, train))
    trainer = Trainer(vae, train, prepared.train, prepared.val, run, modality.callbacks(prepared))
    _fit(trainer)
    return load(run) if run is not None else trainer


def _new_run_dir(out, overwrite: bool, prepared, vae, kind: str, data, train: TrainConfig, **extra) -> Path:
    run = runs.create_run_dir(out, overwrite)
    for name, content in prepared.files.items():
        runs.atomic_write(run / name, content)
    runs.atomic_write(run / "summary.txt", (model_summary(vae) + "\n").encode())
    runs.write_json(run / runs.CONFIG, run_config(kind, vae, data, train) | extra)  # last: marks a run
    return run


RESUME_SETTINGS = ("device", "threads", "progress")  # TrainConfig fields a resumed run may change: not its maths


def resume(path: str | Path, epochs: int | None = None, echo=print, kind: str | None = None,
           model: str | None = None, model_options: dict | None = None, data: dict | None = None,
           **settings) -> Run:
    """Continue a run from its checkpoint, optionally to a new total number of epochs.

    kind, model and model_options: what the caller takes the run to be (vaekit train KIND --resume
    with model options). Resume continues the run's own model, so a run that differs is refused
    rather than trained as something the caller did not ask for. data: where the run's data are now
    ({"data": ..., "data_dir": ...}: they moved), recorded in its config.json; settings: the
    RESUME_SETTINGS (device, threads, progress), which change where it runs, not what it learns."""
    path = Path(path)
    config = runs.read_config(path)
    modality = modalities.get(config.get("kind"))
    saved = config.get("train")
    settings = {k: v for k, v in settings.items() if v is not None}
    if isinstance(saved, dict):  # the new total and settings, checked with the other settings
        unknown = sorted(set(settings) - set(RESUME_SETTINGS))
        if unknown:
            raise VaekitError(f"a resumed run continues with its own training settings; it cannot change "
                              f"{', '.join(unknown)} (it may change {', '.join(RESUME_SETTINGS)} and epochs)")
        saved = {**saved, **settings, **({"epochs": epochs} if epochs is not None else {})}
    train = from_dict(TrainConfig, saved, "config.json 'train'")
    data = _resume_data(path, config, modality, data or {})
    torch.manual_seed(train.seed)  # as train() does, so a run killed before its first checkpoint restarts exactly
    vae = model_from_config(config)
    _check_same_model(path, config["kind"], vae, kind, model, model_options or {})
    if runs.is_complete(path) and not (path / runs.CHECKPOINT).exists():  # vaekit.VAE.save, or deleted
        raise VaekitError(f"{path} is complete and has no checkpoint to continue from; training it from the start "
                          "would replace its weights: train a new run instead")
    ctx = distributed.setup(train.device)
    echo = echo if ctx.is_main else (lambda *a, **k: None)
    prepared = modality.training_data(data, path)
    trainer = Trainer(vae, train, prepared.train, prepared.val, path, modality.callbacks(prepared))
    if (path / runs.CHECKPOINT).exists():
        trainer.load_checkpoint()
        if not _left_to_train(path, trainer, epochs, echo):
            return load(path)
    elif train.trainable != "all":  # a fresh model's encoder against a random decoder is no refinement
        raise VaekitError(f"{path} was stopped before its refinement began; run vaekit refine again")
    else:
        echo(f"{path} was stopped before its first checkpoint; training it from the start")
    # The new total and where the data are now are the run's; where this resume runs (settings) is not.
    own = from_dict(TrainConfig, config["train"], "config.json 'train'")
    recorded = dataclasses.replace(train, **{k: getattr(own, k) for k in settings})
    if config["train"] != _as_json(recorded) or config["data"] != _as_json(data):
        # Only now: a resume refused above leaves config.json as it was.
        config["train"], config["data"] = dataclasses.asdict(recorded), dataclasses.asdict(data)
        ctx.on_main(lambda: runs.write_json(path / runs.CONFIG, config))
    _fit(trainer)
    if ctx.is_main:
        stamps.warn_stale(path)  # ONNX graphs, evaluations, maps made from the weights it had before
    return load(path)


def _as_json(config) -> dict:
    """A config dataclass as config.json holds it (tuples as lists)."""
    import json

    return json.loads(json.dumps(dataclasses.asdict(config)))


def _resume_data(path: Path, config: dict, modality, changes: dict):
    """The data config a resumed run reads: its own, relative paths of an old run resolved, with the
    settings given (the data moved: --data, --data-dir) in their place, recorded absolute."""
    data = from_dict(modality.DataConfig, config.get("data"), "config.json 'data'")
    data = modality.resolve_paths(data, path)
    changes = {k: v for k, v in changes.items() if v is not None}
    for name in changes:
        modality.check_data_option(name)
    return modality.absolute_paths(dataclasses.replace(data, **changes))


def _left_to_train(path: Path, trainer: Trainer, epochs: int | None, echo) -> bool:
    """Say where a resumed run continues; False when a complete run has nothing left to train."""
    st, total = trainer.state, trainer.config.epochs
    if epochs is not None and (epochs < st.epoch or (epochs == st.epoch and st.batch_in_epoch)):
        raise VaekitError(f"{path} has already trained {st.epoch} epochs"
                          + (f" and {st.batch_in_epoch} batches of epoch {st.epoch + 1}" if st.batch_in_epoch else "")
                          + f"; the new total number of epochs must be above {st.epoch}, got {epochs}")
    if st.epoch >= total:
        if runs.is_complete(path):
            echo(f"{path} is already complete ({st.epoch}/{total} epochs), nothing to train; to train it "
                 f"further, give a new total: vaekit resume {path} --epochs N (N above {st.epoch})")
            return False
        # Killed after its last checkpoint: fit() still keeps the best or averaged weights and ends it.
        echo(f"{path} has trained all {total} epochs; finishing it from its checkpoint at step {st.step}")
        return True
    done = (f"{st.epoch} of {total} epochs done" if not st.batch_in_epoch else
            f"epoch {st.epoch + 1} of {total}, {st.batch_in_epoch} batches into it")
    echo(f"resuming {path} at step {st.step} ({done})")  # "step N " is what tests/faultlib.py reads
    return True


def _check_same_model(path: Path, run_kind: str, vae, kind: str | None, model: str | None, options: dict) -> None:
    """Refuse to resume a run as a kind, model or model options it does not have: resume continues
    the run's own model, and would otherwise ignore them without a word."""
    new_run = "train a new run instead (another --out, or --overwrite to replace this one)"
    if kind is not None and kind != run_kind:
        raise VaekitError(f"{path} is {_a(run_kind)} run, not {_a(kind)} run: "
                          f"continue it with vaekit resume {path}, or {new_run}")
    if model is not None and model != vae.name:
        raise VaekitError(f"{path} holds a {vae.name!r} model, not {model!r}: resume continues the run's own "
                          f"model, so drop --model, or {new_run}")
    missing = object()
    differ = []
    for name, value in options.items():
        saved = getattr(vae.config, name, missing)
        if (tuple(value) if isinstance(value, list) else value) != saved:
            has = f"no --{name.replace('_', '-')}" if saved is missing else _as_flag(name, saved)
            differ.append(f"{has} (given {_as_flag(name, value)})")
    if differ:
        raise VaekitError(f"{path}'s {vae.name!r} model has {', '.join(differ)}; resume continues the run's own "
                          f"model, so drop those options, or {new_run}")


def _a(kind: str) -> str:
    """'an image', 'a text': a kind with its article, for messages."""
    try:
        return f"{modalities.get(kind).article} {kind}"
    except VaekitError:
        return f"a {kind}"


def _as_flag(name: str, value) -> str:
    """A model option as it is typed: --latent-dim 8, --channels 32 64, --batch-norm / --no-batch-norm."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    return f"{flag} {' '.join(map(str, value)) if isinstance(value, (tuple, list)) else value}"


def refine(source: str | Path, out: str | Path, overwrite: bool = False, echo=print, **options) -> Run:
    """Fit the encoder of a trained run again, against its fixed decoder, into a new run at `out`.

    An encoder trained jointly with its decoder lags behind it: its posteriors are not the best ones
    for the final decoder (the amortisation gap, Cremer et al. 2018; He et al. 2019 train the encoder
    alone for the same reason). Here the decoder is frozen and run as at evaluation (no dropout, no
    word dropout), and the encoder alone is fitted to the plain ELBO (beta 1, no annealing; free_bits
    > 0 keeps a per-dimension KL floor). The data, the tokenizer and the model are the source run's,
    which is left untouched; with validation data the epoch with the lowest validation -ELBO is kept.
    `options` set TrainConfig fields (train.refine_config: defaults REFINE_DEFAULTS, then the source's).
    """
    source = Path(source)
    config = runs.read_config(source)
    if Path(out).resolve() == source.resolve():
        raise VaekitError(f"refine writes a new run and leaves {source} as it is: choose another --out")
    modality = modalities.get(config.get("kind"))
    data = _resume_data(source, config, modality, {})
    base = from_dict(TrainConfig, config.get("train"), "config.json 'train'")
    train = refine_config(base, validated=True, **options)  # settings checked before the data is read
    ctx = distributed.setup(train.device)
    echo = echo if ctx.is_main else (lambda *a, **k: None)
    check_runtime(train)
    prepared = modality.training_data(data, source)  # the source's tokenizer: the same ids
    train = refine_config(base, validated=prepared.val is not None, **options)
    model = load(source).model
    run = ctx.on_main(lambda: _new_run_dir(out, overwrite, prepared, model, modality.name, data, train,
                                           refined_from=str(source.resolve())))
    trainer = Trainer(model, train, prepared.train, prepared.val, run, modality.callbacks(prepared))
    before = trainer.evaluate(prepared.val, shard=True)["loss"] if prepared.val is not None else None
    if before is not None:
        echo(f"validation -ELBO of {source}: {before:.2f}")
    # Before any step: a run killed now resumes from the source's weights, not from a fresh model.
    trainer.save_checkpoint()
    _fit(trainer)
    _compare_with_source(trainer.state.history, before, source, run, echo)
    return load(run)


def _compare_with_source(history: list[dict], before: float | None, source: Path, run: Path, echo) -> None:
    """Say whether the refined run ended better than its source on the validation data: its epochs are
    compared with one another ("best so far"), and all of them can still be worse than where it started."""
    if before is None or not history or "val_loss" not in history[-1]:
        return
    kept = history[history[-1]["best_epoch"] - 1] if "best_epoch" in history[-1] else history[-1]
    after = kept["val_loss"]
    if after < before:
        echo(f"refined: validation -ELBO {before:.2f} -> {after:.2f} ({before - after:.2f} nats better than {source})")
    else:
        echo(f"vaekit: note: the refined run did not improve on its source: validation -ELBO {after:.2f} against "
             f"{before:.2f} for {source}; keep using {source} (or refine with a lower --lr or fewer --epochs)")


def _fit(trainer: Trainer) -> None:
    try:
        trainer.fit()
    except VaekitError as e:
        try:
            trainer._set_status("failed", str(e))
        except VaekitError:  # the disk that failed the run may refuse the status too
            pass
        raise


def run_config(kind: str, model, data, train: TrainConfig) -> dict:
    return {"format": runs.FORMAT, "format_version": runs.FORMAT_VERSION, "vaekit_version": __version__,
            "kind": kind, "model": {"name": model.name, "config": model.config_dict()},
            "data": dataclasses.asdict(data), "train": dataclasses.asdict(train)}

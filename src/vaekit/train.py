"""One trainer for every vaekit model. It knows the VAE interface and nothing of images or text.

Resume is exact: the checkpoint holds the weights, the optimizer, the global torch RNG (the
reparameterisation noise and dynamic binarisation), the shuffling generator's state at the start
of the epoch and how many batches of the epoch were done, so a resumed run replays the same
batches with the same noise as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import distributed, messages, runs
from .data import TensorData, iterate_batches, num_batches
from .errors import VaekitError
from .objectives import training_loss


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (from lr down to lr_min over the run's steps)
    # Cosine as Loshchilov & Hutter 2017; a function of the step, so a resumed run continues it exactly.
    lr_min: float = 0.0  # the cosine schedule's final learning rate
    seed: int = 42
    beta: float = 1.0  # weight of the KL term once annealing is over (Higgins et al. 2017)
    kl_warmup_steps: int = 0  # linear KL annealing from 0 to beta (Bowman et al. 2016)
    kl_warmup_epochs: float = 0.0  # the same warm-up given in epochs (e.g. 1.0: over the first epoch),
    # which scales with the data set; at most one of the two may be set
    kl_cycles: int = 0  # >0: cyclical annealing over the run (Fu et al. 2019)
    free_bits: float = 0.0  # per-dimension KL floor in nats (Kingma et al. 2016)
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 on CUDA only, with loss scaling)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = True  # conv models only: NHWC is oneDNN's and cuDNN's fast layout
    compile: bool = False  # torch.compile the model (fuses pointwise work; first steps are slow)
    threads: int = 0  # CPU threads for torch; 0 = torch's default. Small recurrent models often run
    # faster on 1 thread, and on a busy machine many tiny parallel regions stall on a descheduled thread.
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch; 0 = each epoch
    keep_best: bool = False  # the run's weights are those of the epoch with the lowest validation
    # -ELBO (early stopping by selection); the checkpoint still holds the last step, for resume
    average_from: int = 0  # >0: from this epoch on, the run's weights are the mean of the weights at
    # the end of each epoch (stochastic weight averaging, Izmailov et al. 2018; averaged iterates train
    # LSTM language models well, Merity et al. 2018). Validation, keep_best and the saved weights use
    # the mean; training goes on from the latest weights. Batch-norm statistics are averaged too.
    trainable: str = "all"  # all | encoder: fit only the parameters that the encoder alone uses,
    # with the whole model in eval mode (no dropout), so the encoder learns the posterior of the fixed
    # decoder it is evaluated with (vaekit refine; the amortisation gap of Cremer et al. 2018). The
    # other parameters are frozen (requires_grad False) on the model.
    log_every: int = 50  # TensorBoard train scalars every N steps
    skip_nonfinite: int = 0  # skip up to N batches whose loss or gradients are NaN/inf (counted in
    # the metrics as skipped_batches); 0 = stop at the first one, keeping the last good checkpoint
    progress: bool = True  # the per-batch progress bar (the per-epoch lines are printed either way)

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), "learning rate must be a positive number"),
            (self.lr_schedule in ("constant", "cosine"), "lr_schedule must be constant or cosine"),
            (0 <= self.lr_min <= self.lr, "lr_min must be between 0 and lr"),
            (0 <= self.beta < math.inf, "beta must be a finite number >= 0"),
            (self.kl_warmup_steps >= 0 and self.kl_cycles >= 0 and 0 <= self.kl_warmup_epochs < math.inf,
             "KL schedule settings must be >= 0"),
            (not (self.kl_warmup_steps and self.kl_warmup_epochs),
             "give the KL warm-up in steps or in epochs, not both"),
            (0 <= self.free_bits < math.inf, "free bits must be a finite number >= 0"),
            (0 <= self.grad_clip < math.inf, "grad_clip must be a finite number >= 0 (0: off)"),
            (self.precision in ("fp32", "bf16", "fp16"), "precision must be fp32, bf16 or fp16"),
            (0 <= self.threads <= 1024, "threads must be between 0 and 1024"),
            (self.skip_nonfinite >= 0, "skip_nonfinite must be >= 0"),
            (self.trainable in ("all", "encoder"), "trainable must be all or encoder"),
            (self.average_from >= 0, "average_from must be >= 0"),
            # An average that would start after the last epoch holds nothing: the run would end with
            # plain weights while its config says they are averaged.
            (self.average_from <= self.epochs,
             f"average_from ({self.average_from}) is after the last epoch ({self.epochs}), so nothing would be "
             "averaged: give an epoch from 1 to epochs, or 0 for no averaging"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0 (0: once per epoch)"),
            (self.log_every >= 1, "log_every must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise VaekitError(message)


# On PTB the first 400 steps (a third of an epoch) gave the whole gain (bench/RESULTS.md).
REFINE_DEFAULTS = {"epochs": 2, "lr": 3e-4, "free_bits": 0.0}


def refine_config(base: TrainConfig, validated: bool, **options) -> TrainConfig:
    """Settings to fit again the encoder of a model trained with `base` (vaekit refine): the plain
    ELBO (beta 1, no annealing; free_bits > 0 keeps a per-dimension KL floor), a constant lr, only
    the encoder trained; with validation data the best epoch is kept. `options` set other fields
    (defaults: REFINE_DEFAULTS, then base's)."""
    fixed = {"lr_schedule": "constant", "beta": 1.0, "kl_warmup_steps": 0, "kl_warmup_epochs": 0.0, "kl_cycles": 0,
             "average_from": 0, "trainable": "encoder", "keep_best": validated}
    options = {k: v for k, v in options.items() if v is not None}
    if unknown := sorted(set(options) - ({f.name for f in fields(TrainConfig)} - set(fixed))):
        raise VaekitError(f"refine cannot set {', '.join(unknown)}")
    return replace(base, **fixed, **(REFINE_DEFAULTS | options))


def kl_weight(step: int, total_steps: int, config: TrainConfig, steps_per_epoch: int = 0) -> float:
    """KL weight at a step: linear warm-up (kl_warmup_steps, or kl_warmup_epochs of steps_per_epoch
    steps each), or cyclical (Fu et al. 2019: rise over the first half of each cycle, then hold),
    times beta."""
    if config.kl_cycles > 0:
        period = max(1, total_steps // config.kl_cycles)
        return config.beta * min(1.0, (step % period) / (0.5 * period))
    warmup = config.kl_warmup_steps or round(config.kl_warmup_epochs * steps_per_epoch)
    if warmup > 0:
        return config.beta * min(1.0, step / warmup)
    return config.beta


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """Learning rate at a step: constant, or cosine from lr to lr_min (Loshchilov & Hutter 2017)."""
    if config.lr_schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))
    return config.lr


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VaekitError(f"device '{name}' requested but CUDA is not available here")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VaekitError(f"unknown device '{name}'") from None
    # vaekit trains and runs on CPUs and CUDA GPUs; torch parses more names (mps, xpu, meta) than
    # this build can use, and they would fail mid-run.
    if device.type not in ("cpu", "cuda"):
        raise VaekitError(f"device '{name}': vaekit runs on cpu or cuda (auto picks CUDA when available)")
    if device.type == "cpu" and device.index not in (None, 0):
        raise VaekitError(f"device '{name}': there is one CPU device; use cpu (--threads sets its threads)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise VaekitError(f"device '{name}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def autocast_context(device: torch.device, precision: str):
    """Mixed precision: bf16 on CUDA or on CPUs with native bf16, fp16 on CUDA."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise VaekitError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise VaekitError("fp16 needs a CUDA device; on CPU use --precision bf16")
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise VaekitError("this CPU has no native bf16 support; use --precision fp32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def epoch_line(m: dict) -> str:
    """One readable line per epoch: the numbers a user watches, in nats per example."""
    line = (f"epoch {m['epoch']}: train -ELBO {m['train_loss']:.2f} (rec {m['train_reconstruction']:.2f}, "
            f"KL {m['train_kl']:.2f})")
    if "val_loss" in m:
        line += f" | val -ELBO {m['val_loss']:.2f} (rec {m['val_reconstruction']:.2f}, KL {m['val_kl']:.2f})"
    line += f" | {m['examples_per_s']:.0f} examples/s"
    if "averaged_epochs" in m:
        line += f" | weights averaged over {m['averaged_epochs']} epochs"
    return line + (" | best so far, kept" if m.get("best_epoch") == m["epoch"] else "")


def best_epoch(history: list[dict]) -> int:
    """The epoch with the lowest finite validation -ELBO (the first of equals; the first epoch if
    none is finite; 0 before any): the one a keep_best run keeps."""
    finite = [m for m in history if math.isfinite(m.get("val_loss", math.nan))]
    return min(finite, key=lambda m: m["val_loss"])["epoch"] if finite else (history[0]["epoch"] if history else 0)


def check_runtime(config: TrainConfig) -> torch.device:
    """Fail before anything is written if the device or precision cannot work here."""
    device = resolve_device(config.device)
    autocast_context(device, config.precision)
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cpu":
        keep_freed_memory()
    return device


def keep_freed_memory() -> None:
    """Let glibc keep freed buffers of up to 32 MiB in its heap instead of unmapping them.

    By default each large activation is mmapped afresh and unmapped on free, so every training step
    page-faults its tensors in again; avoiding that made the seed model's bf16 training 1.2-1.6x
    faster on the 2-core benchmark machine (bench/RESULTS.md). The process keeps its peak heap.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library (musl): leave it alone
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD, at glibc's maximum
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: give free heap back only beyond 1 GiB


def place_data(data: TensorData, device: torch.device, budget: float = 0.5) -> TensorData:
    """Keep the training data where batches are cheapest to take.

    On CUDA: on the GPU when it fits in `budget` of the free memory (no copy per step), else in
    pinned host memory, so each batch's copy can run asynchronously (non_blocking). CPU: as is.
    """
    if device.type != "cuda":
        return data
    nbytes = data.x.numel() * data.x.element_size()
    free, _ = torch.cuda.mem_get_info(device)
    if nbytes <= budget * free:
        return data.to(device)
    return TensorData(data.x.pin_memory(), data.y, data.prepare)


@dataclass
class TrainState:
    """What the loop has done so far; saved in the checkpoint's metadata as JSON."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current (incomplete) epoch already taken
    sums: dict = field(default_factory=dict)  # running sums of the incomplete epoch
    history: list = field(default_factory=list)  # one metrics dict per completed epoch
    skipped: int = 0  # batches skipped for a non-finite loss or gradient (skip_nonfinite), whole run
    averaged: int = 0  # epochs in the running mean of average_from (counted, not inferred from the
    # config: a resume with an earlier average_from must not claim epochs the mean never saw)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once the checkpoint is safely written."""


class Trainer:
    """Fits `model` on `train` (TensorData), validating on `val` each epoch.

    `run` is a run directory (checkpoints, metrics, TensorBoard); None trains in memory only.
    `callbacks` are objects with optional `on_metrics(trainer, metrics)` (add to an epoch's metrics
    before they are saved), `on_epoch_end(trainer, metrics)` and `on_train_end(trainer)`.
    """

    def __init__(self, model, config: TrainConfig, train: TensorData, val: TensorData | None = None,
                 run: str | Path | None = None, callbacks: list | None = None):
        if config.keep_best and val is None:
            raise VaekitError("keep_best chooses the epoch by its validation -ELBO, and there is no "
                              "validation data: give a validation set or a validation fraction above 0")
        self.config = config
        self.dist = distributed.setup(config.device)  # several processes: see distributed.py
        self.device = check_runtime(config)
        self.model = model.to(self.device)
        self.memory_format = torch.channels_last if (
            config.channels_last and train.x.dim() == 4) else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.params = list(self.model.parameters())
        if config.trainable == "encoder":  # frozen before DDP wraps the model: it syncs only these
            self.params = self.model.encoder_only_parameters()
            chosen = {id(p) for p in self.params}
            for p in self.model.parameters():
                p.requires_grad_(id(p) in chosen)
        self.train_data = place_data(train, self.device)
        self.val_data = val
        self.run = Path(run) if run is not None else None
        self.callbacks = (callbacks or []) if self.dist.is_main else []  # plots: rank 0 only
        # The DDP / compiled modules share parameters with self.model; checkpoints use self.model.
        self.forward = distributed.wrap(self.model, self.dist, self.device)
        self.forward = torch.compile(self.forward) if config.compile else self.forward
        # The fused kernel updates each tensor in one pass instead of ~10 (CPU and CUDA): measurable
        # on the 10M-parameter text model, and it adds no per-tensor Python overhead on the small ones.
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, fused=fused or None)
        self.scaler = torch.amp.GradScaler(enabled=config.precision == "fp16")
        self.state = TrainState()
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.epoch_start_shuffle = self.shuffle.get_state()
        self.writer = None
        self._stop_requested = False
        self._saved_step: int | None = None  # step of the last checkpoint written or loaded
        self._loss_share = 1.0
        self._best_weights: dict | None = None  # keep_best: a copy of the best epoch's weights
        self._average: dict | None = None  # average_from: the running mean of the epochs' weights
        torch.manual_seed(distributed.rank_seed(config.seed, self.dist.rank))

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        """Train to config.epochs; returns the per-epoch metrics history."""
        if self.run is not None and self.dist.is_main:  # a read-only folder or a full disk fails now
            runs.check_writable(self.run, self.checkpoint_bytes())
            runs.remove_temporaries(self.run)  # left by a write that a kill cut short
        self._open_writer()
        self._stop_requested = False
        with self._deferred_sigint():
            while self.state.epoch < self.config.epochs:
                self._train_epoch()
                if self._stop_requested:
                    self._interrupted()
                    raise TrainingInterrupted(
                        f"stopped in epoch {self.state.epoch + 1} at step {self.state.step}; checkpoint saved"
                        + (f". Resume with: vaekit resume {self.run}" if self.run else ""))
                metrics = self._end_epoch()
                for cb in self.callbacks:
                    getattr(cb, "on_epoch_end", lambda *a: None)(self, metrics)
        if self.config.keep_best:  # what follows (plots, samples, the caller) sees the weights kept
            self.model.load_state_dict(self._best_weights if self._best_weights is not None
                                       else runs.load_tensors(self.run / runs.WEIGHTS))
        elif self._average is not None:
            self.model.load_state_dict(self._average)
        for cb in self.callbacks:
            getattr(cb, "on_train_end", lambda *a: None)(self)
        self._set_status("complete")
        if self.writer:
            self.writer.close()
        self.dist.barrier()  # rank 0's last files are written before any rank returns
        return self.state.history

    def _train_epoch(self) -> None:
        cfg, st = self.config, self.state
        n_batches = num_batches(len(self.train_data), cfg.batch_size)
        total_steps = n_batches * cfg.epochs
        self.shuffle.set_state(self.epoch_start_shuffle)
        batches = iterate_batches(self.train_data, cfg.batch_size, self.shuffle, start=st.batch_in_epoch,
                                  rank=self.dist.rank, world=self.dist.world)
        bar = tqdm(total=n_batches, initial=st.batch_in_epoch, desc=f"epoch {st.epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and self.dist.is_main), leave=True, dynamic_ncols=True)
        self.model.train(cfg.trainable == "all")  # an encoder refinement fits the decoder as evaluated
        started = time.perf_counter()
        # Closed however the epoch ends: an error (a NaN loss) then prints on a line of its own
        # instead of inside the bar, and no half-drawn bar is redrawn after it.
        try:
            for batch in batches:
                if self.dist.any(self._stop_requested):  # every rank stops at the same step
                    break
                self._train_batch(batch, bar, n_batches, total_steps)
        finally:
            bar.close()
        st.sums["seconds"] = st.sums.get("seconds", 0.0) + time.perf_counter() - started

    def _train_batch(self, batch: torch.Tensor, bar, n_batches: int, total_steps: int) -> None:
        """One step with its schedules, sums, progress, logging and mid-epoch checkpoint."""
        cfg, st = self.config, self.state
        weight = kl_weight(st.step, total_steps, cfg, n_batches)
        lr = learning_rate(st.step, total_steps, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n_real, self._loss_share = self._share(st.batch_in_epoch)
        rec, kl = self._step(batch, weight)
        st.step += 1
        st.batch_in_epoch += 1
        if math.isnan(rec):  # a skipped non-finite batch: counted, not averaged
            st.sums["skipped"] = st.sums.get("skipped", 0) + 1
        else:
            for key, value in (("rec", rec), ("kl", kl), ("n", n_real)):
                st.sums[key] = st.sums.get(key, 0.0) + value * (n_real if key != "n" else 1)
        bar.update(1)
        if st.batch_in_epoch % 10 == 1 or st.batch_in_epoch == n_batches:
            bar.set_postfix({"loss": f"{rec + kl:.2f}", "rec": f"{rec:.2f}", "kl": f"{kl:.2f}",
                             "kl_w": f"{weight:.2f}"})
        if self.writer and st.step % cfg.log_every == 0:
            for key, value in (("loss", rec + kl), ("reconstruction", rec), ("kl", kl), ("kl_weight", weight),
                               ("lr", lr)):
                self.writer.add_scalar(f"train_step/{key}", value, st.step)
        if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0 and st.batch_in_epoch < n_batches:
            self.save_checkpoint()

    def _share(self, batch_index: int) -> tuple[int, float]:
        """This rank's real examples in the epoch's batch number batch_index, and its loss weight
        n_real * world / global batch (1 in one process), so that DDP's mean of the ranks'
        gradients is the gradient of the global batch's mean loss."""
        global_len = min(self.config.batch_size, len(self.train_data) - batch_index * self.config.batch_size)
        n_real = distributed.share_sizes(global_len, self.dist.world)[self.dist.rank]
        return n_real, n_real * self.dist.world / global_len

    def _step(self, batch: torch.Tensor, weight: float) -> tuple[float, float]:
        """One optimizer step; returns the batch's mean reconstruction and KL (nats/example)."""
        if batch.device.type == "cpu" and self.device.type == "cuda":
            batch = batch.pin_memory()  # from page-locked memory the copy below is asynchronous
        batch = batch.to(self.device, non_blocking=True)
        if batch.dim() == 4:
            batch = batch.contiguous(memory_format=self.memory_format)
        with autocast_context(self.device, self.config.precision):
            terms = self.forward(batch)
        loss = training_loss(terms, weight, self.config.free_bits)
        if self.dist.active:  # this rank's part of a global batch (see _share)
            loss = loss * self._loss_share
        finite = bool(torch.isfinite(loss))
        # Every process skips or stops together: one that left the step alone would leave the
        # others waiting in the gradient all-reduce.
        if self.dist.any(not finite):
            return self._nonfinite(f"the loss became {loss.item()}" if not finite
                                   else "the loss became non-finite in another process")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        elif not self.scaler.is_enabled():
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        # fp16's loss scaler skips steps with inf gradients by design (and lowers its scale), so
        # only an unscaled run checks them: one Adam step on a NaN gradient ruins every weight.
        if not self.scaler.is_enabled() and not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return self._nonfinite(f"the gradients became {norm.item()}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms.reconstruction.mean().item(), terms.kl.mean().item()

    def _nonfinite(self, what: str) -> tuple[float, float]:
        """Skip the batch while skip_nonfinite allows (returns NaNs: not averaged), else stop."""
        if self.state.skipped < self.config.skip_nonfinite:
            self.state.skipped += 1
            return math.nan, math.nan
        kept = (f"the last good checkpoint (step {self._saved_step}) is kept in {self.run}"
                if self.run is not None and self._saved_step is not None else "no checkpoint was written yet")
        skipped = f" after skipping {self.state.skipped} such batches" if self.config.skip_nonfinite else ""
        raise VaekitError(
            f"{what} at step {self.state.step + 1}{skipped}; training stopped and {kept}. Likely causes: a "
            "learning rate too high or NaN/inf values in the data. Train again with a lower --lr (e.g. 1e-4) "
            "or --grad-clip 1, or with --skip-nonfinite N to skip up to N such batches")

    def _end_epoch(self) -> dict:
        st = self.state
        st.sums = self.dist.all_sum(st.sums)  # every rank's examples, once
        n = st.sums.get("n", 1)
        metrics = {"epoch": st.epoch + 1, "step": st.step,
                   "train_loss": (st.sums.get("rec", math.nan) + st.sums.get("kl", math.nan)) / n,
                   "train_reconstruction": st.sums.get("rec", math.nan) / n,
                   "train_kl": st.sums.get("kl", math.nan) / n,
                   "seconds": st.sums["seconds"], "examples_per_s": n / max(st.sums["seconds"], 1e-9)}
        if self.config.skip_nonfinite:
            metrics["skipped_batches"] = st.sums.get("skipped", 0)
        if averaged := self._update_average():
            metrics["averaged_epochs"] = averaged
        with self._holding(self._average):  # validation and keep_best see the weights the run keeps
            if self.val_data is not None:
                metrics.update({f"val_{k}": v for k, v in self.evaluate(self.val_data, shard=True).items()})
            if self.config.keep_best:  # every rank sees the same all-reduced val_loss, so all agree
                metrics["best_epoch"] = best_epoch(st.history + [metrics])
                if metrics["best_epoch"] == metrics["epoch"]:
                    self._best_weights = {k: v.detach().to("cpu", copy=True)
                                          for k, v in self.model.state_dict().items()}
        for cb in self.callbacks:  # derived figures (e.g. perplexity) join the epoch's metrics
            getattr(cb, "on_metrics", lambda *a: None)(self, metrics)
        st.epoch += 1
        st.batch_in_epoch = 0
        st.sums = {}
        st.history.append(metrics)
        self.epoch_start_shuffle = self.shuffle.get_state()
        if self.writer:
            for key, value in metrics.items():
                if key not in ("epoch", "step"):
                    split, _, name = key.partition("_")
                    self.writer.add_scalar(f"{split}/{name}", value, st.epoch)
            self.writer.flush()
        self.save_checkpoint()
        if self.dist.is_main:  # with or without the bar: the epoch's figures are the run's log
            messages.epoch(epoch_line(metrics))  # through logging (vaekit.messages)
        return metrics

    @torch.no_grad()
    def _update_average(self) -> int:
        """Fold the weights at the end of this epoch into the running mean (average_from) and
        return how many epochs it holds; 0 before that epoch. Integer buffers (batch-norm
        counters) take the latest value."""
        due = self.config.average_from and self.state.epoch + 1 >= self.config.average_from  # this epoch counts
        if not due:  # also drops a mean that a resume with a later average_from no longer wants
            self._average, self.state.averaged = None, 0
            return 0
        weights = self.model.state_dict()
        starts = self.state.epoch + 1 == self.config.average_from
        if self._average is None or starts:
            self._average = {k: v.detach().clone() for k, v in weights.items()}
            self.state.averaged = 1
            return 1
        self.state.averaged += 1
        for k, v in weights.items():
            if v.is_floating_point():
                self._average[k].add_(v - self._average[k], alpha=1 / self.state.averaged)
            else:
                self._average[k].copy_(v)
        return self.state.averaged

    @contextlib.contextmanager
    def _holding(self, weights: dict | None):
        """The model holds `weights` inside the block (None: its own), and its own again after."""
        if weights is None:
            yield
            return
        own = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(weights)
        try:
            yield
        finally:
            self.model.load_state_dict(own)

    @torch.no_grad()
    def evaluate(self, data: TensorData, batch_size: int = 500, shard: bool = False) -> dict:
        """Mean negative ELBO, reconstruction and KL per example (nats), with fixed noise.

        shard=True (a collective: every rank must call it) splits the data over the processes.
        """
        ctx = self.dist if shard else distributed.Dist()
        was_training = self.model.training
        self.model.eval()
        totals = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(distributed.rank_seed(self.config.seed + 1, ctx.rank))
            for i, batch in enumerate(iterate_batches(data, batch_size, rank=ctx.rank, world=ctx.world)):
                real = distributed.share_sizes(min(batch_size, len(data) - i * batch_size), ctx.world)[ctx.rank]
                if real == 0:  # a share padded for training's sake; nothing to evaluate
                    continue
                batch = batch.to(self.device, non_blocking=True)
                if batch.dim() == 4:
                    batch = batch.contiguous(memory_format=self.memory_format)
                with autocast_context(self.device, self.config.precision):
                    terms = self.model(batch)
                totals["reconstruction"] += terms.reconstruction.float().sum().item()
                totals["kl"] += terms.kl.float().sum().item()
        summed = ctx.all_sum({"rec": totals["reconstruction"], "kl": totals["kl"]})
        totals = {"reconstruction": summed["rec"], "kl": summed["kl"], "loss": summed["rec"] + summed["kl"]}
        self.model.train(was_training)
        return {k: v / len(data) for k, v in totals.items()}

    # ---- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write checkpoint, weights, metrics and status; each file atomically."""
        if self.run is None:
            return
        sums, rng_states = self.dist.all_sum(self.state.sums), self.dist.gather_rng()  # collectives
        if not self.dist.is_main:  # rank 0 now holds the global sums; the others restart from 0
            self.state.sums = {k: 0.0 for k in sums if k in distributed.SUM_KEYS} | {
                k: v for k, v in self.state.sums.items() if k not in distributed.SUM_KEYS}
            return
        self.state.sums = sums
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt = self.optimizer.state_dict()
        for pid, pstate in opt["state"].items():
            for key, value in pstate.items():
                tensors[f"optim.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
        if self._average is not None:
            tensors.update({f"average.{k}": v for k, v in self._average.items()})
        tensors["rng.torch"] = rng_states[0]
        tensors.update({f"rng.torch.{r}": state for r, state in enumerate(rng_states) if r})
        tensors["rng.shuffle_epoch_start"] = self.epoch_start_shuffle
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"trainer": json.dumps(asdict(self.state)), "param_groups": json.dumps(opt["param_groups"]),
                "scaler": json.dumps(self.scaler.state_dict())}
        # The checkpoint is one file, written first and atomically: it alone is what resume reads,
        # so a kill between the files below leaves at worst an older model.safetensors/metrics.
        runs.save_tensors(self.run / runs.CHECKPOINT, tensors, meta)
        self._saved_step = self.state.step
        st = self.state
        if not self.config.keep_best or (best_epoch(st.history) == st.epoch and st.batch_in_epoch == 0):
            runs.save_tensors(self.run / runs.WEIGHTS, self._average or self.model.state_dict())
        lines = "".join(json.dumps(m) + "\n" for m in self.state.history)
        runs.atomic_write(self.run / runs.METRICS, lines.encode())
        self._set_status("running")

    def load_checkpoint(self) -> None:
        """Restore everything save_checkpoint wrote, so training continues exactly."""
        path = self.run / runs.CHECKPOINT
        tensors = runs.load_tensors(path)
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        try:
            model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
            self.model.load_state_dict(model_state)
            average = {k[8:]: v.to(self.device) for k, v in tensors.items() if k.startswith("average.")}
            self._average = average or None
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            state = {}
            for key, value in tensors.items():
                if key.startswith("optim."):
                    _, pid, name = key.split(".", 2)
                    like = params[int(pid)]
                    if name != "step" and value.shape == like.shape:
                        # In the parameter's own memory format (channels-last conv weights): the fused
                        # Adam kernel walks moments and parameters in memory order, so they must agree.
                        value = torch.empty_like(like, dtype=value.dtype).copy_(value)
                    elif name != "step":
                        value = value.to(self.device)
                    state.setdefault(int(pid), {})[name] = value
            self.optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
            self.scaler.load_state_dict(json.loads(meta["scaler"]))
            saved = json.loads(meta["trainer"])
            self.state = TrainState(**saved)
            if self._average is not None and "averaged" not in saved:  # a checkpoint from before the count
                self.state.averaged = max(1, self.state.epoch + 1 - self.config.average_from)
            self._restore_rng(tensors)
            self.epoch_start_shuffle = tensors["rng.shuffle_epoch_start"]
            if "rng.cuda" in tensors and self.device.type == "cuda":
                torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
            self._saved_step = self.state.step
        except (KeyError, IndexError, RuntimeError, ValueError, TypeError) as e:
            raise VaekitError(f"{path} does not match this run's model or is damaged ({e})") from None

    def _restore_rng(self, tensors: dict) -> None:
        """This rank's saved noise stream; a rank the saved run did not have seeds a fresh one."""
        key = "rng.torch" if self.dist.rank == 0 else f"rng.torch.{self.dist.rank}"
        if key in tensors:
            torch.set_rng_state(tensors[key])
        else:
            torch.manual_seed(distributed.rank_seed(self.config.seed, self.dist.rank, self.state.step))
        if not self.dist.is_main:  # the saved sums are global: rank 0 carries them on
            self.state.sums = {k: v for k, v in self.state.sums.items() if k not in distributed.SUM_KEYS}

    @contextlib.contextmanager
    def _deferred_sigint(self):
        """Ctrl-C finishes the current step, then checkpoints: never a half-applied update."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, frame):
            if self._stop_requested:  # a second Ctrl-C: the user really wants out now
                raise KeyboardInterrupt
            self._stop_requested = True

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ---- run directory helpers ------------------------------------------------------------------
    def checkpoint_bytes(self) -> int:
        """Disk space the next checkpoint needs: checkpoint (weights, two Adam moments and, with
        average_from, the mean) written beside the old one before the rename, model.safetensors,
        and a MiB for JSON and plots."""
        weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return (5 if self.config.average_from else 4) * weights + 2**20

    def _open_writer(self) -> None:
        if self.run is None or self.writer is not None or not self.dist.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged after its last checkpoint.
        self.writer = SummaryWriter(str(self.run / "tb"), purge_step=self.state.step or None)

    def _set_status(self, state: str, message: str = "") -> None:
        if self.run is None or not self.dist.is_main:
            return
        status: dict[str, Any] = {"state": state, "epoch": self.state.epoch, "step": self.state.step,
                                  "epochs": self.config.epochs, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if message:
            status["message"] = message
        runs.write_json(self.run / runs.STATUS, status)

    def _interrupted(self) -> None:
        if self.run is not None:
            self.save_checkpoint()
            self._set_status("interrupted", "resume with: vaekit resume " + str(self.run))
        if self.writer:
            self.writer.close()

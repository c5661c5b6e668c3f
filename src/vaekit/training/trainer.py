"""One trainer for every vaekit model. It knows the VAE interface and nothing of images or text.

Resume is exact: the checkpoint (checkpoint.py) holds the weights, the optimizer, the global torch
RNG (the reparameterisation noise and dynamic binarisation), the shuffling generator's state at the
start of the epoch, how many batches of the epoch were done and every callback's state, so a
resumed run replays the same batches with the same noise as an uninterrupted one.

The loop itself keeps what every step needs: schedules, mixed precision, non-finite skipping,
Ctrl-C and data parallelism. Weight averaging, keep-best and TensorBoard are callbacks
(callbacks.py) that TrainConfig switches on.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import distributed, messages, runs
from ..data import TensorData, iterate_batches, num_batches
from ..errors import VaekitError
from ..objectives import training_loss
from . import checkpoint
from .callbacks import EarlyStopping, KeepBest, ReduceLROnPlateau, TensorBoard, WeightAveraging
from .config import TrainConfig, kl_weight, learning_rate
from .device import autocast_context, check_runtime, place_data


def epoch_line(m: dict) -> str:
    """One readable line per epoch: the numbers a user watches, in nats per example."""
    line = (f"epoch {m['epoch']}: train -ELBO {m['train_loss']:.2f} (rec {m['train_reconstruction']:.2f}, "
            f"KL {m['train_kl']:.2f})")
    if "val_loss" in m:
        line += f" | val -ELBO {m['val_loss']:.2f} (rec {m['val_reconstruction']:.2f}, KL {m['val_kl']:.2f})"
    line += f" | {m['examples_per_s']:.0f} examples/s"
    if "averaged_epochs" in m:
        line += f" | weights averaged over {m['averaged_epochs']} epochs"
    if "lr_reduced_to" in m:
        line += f" | no better for lr_patience epochs: lr reduced to {m['lr_reduced_to']:.3g}"
    return line + (" | best so far, kept" if m.get("best_epoch") == m["epoch"] else "")


@dataclass
class TrainState:
    """What the loop has done so far; saved in the checkpoint's metadata as JSON."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current (incomplete) epoch already taken
    sums: dict = field(default_factory=dict)  # running sums of the incomplete epoch
    history: list = field(default_factory=list)  # one metrics dict per completed epoch
    skipped: int = 0  # batches skipped for a non-finite loss or gradient (skip_nonfinite), whole run


LOGGED_EPOCHS = 100  # a longer run prints about this many epoch lines (Trainer._logs_epoch)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once the checkpoint is safely written."""


class Trainer:
    """Fits `model` on `train` (TensorData), validating on `val` each epoch.

    `run` is a run directory (checkpoints, metrics, TensorBoard); None trains in memory only.
    `callbacks` (callbacks.py: the hooks, and state that the checkpoint keeps) run on rank 0 only;
    the features TrainConfig asks for (average_from, keep_best, TensorBoard) are added on every rank.
    """

    def __init__(self, model, config: TrainConfig, train: TensorData, val: TensorData | None = None,
                 run: str | Path | None = None, callbacks: list | None = None):
        if config.keep_best and val is None:
            raise VaekitError("keep_best chooses the epoch by its validation -ELBO, and there is no "
                              "validation data: give a validation set or a validation fraction above 0")
        for wanted, what in ((config.early_stop, "early_stop"),
                             (config.lr_schedule == "plateau", "lr_schedule plateau")):
            if wanted and val is None:
                raise VaekitError(f"{what} watches the validation -ELBO, and there is no validation data: give a "
                                  "validation set or a validation fraction above 0")
        if config.min_steps:  # a small data set: enough epochs for min_steps optimiser steps
            per_epoch = num_batches(len(train), config.batch_size)
            config = replace(config, epochs=max(config.epochs, -(-config.min_steps // per_epoch)))
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
        # Averaging before keep-best: keep-best chooses among the weights the run keeps.
        self.features = ([WeightAveraging(config.average_from)] if config.average_from else []) + (
            [KeepBest()] if config.keep_best else []) + (
            [EarlyStopping(config.early_stop)] if config.early_stop else []) + (
            [ReduceLROnPlateau(config.lr_factor, config.lr_patience, config.lr_min)]
            if config.lr_schedule == "plateau" else [])
        self.tensorboard = TensorBoard(config.log_every) if self.run is not None else None
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
        self._stop_requested = False
        self._saved_step: int | None = None  # step of the last checkpoint written or loaded
        self._loss_share = 1.0
        torch.manual_seed(distributed.rank_seed(config.seed, self.dist.rank))

    @property
    def writer(self):
        """The TensorBoard SummaryWriter while fit() runs on rank 0 of a run on disk, else None."""
        return self.tensorboard.writer if self.tensorboard is not None else None

    def all_callbacks(self) -> list:
        """In the order hooks run: the features (they settle which weights the others see), the
        caller's callbacks, then TensorBoard (it logs the metrics the others completed)."""
        return [*self.features, *self.callbacks, *([self.tensorboard] if self.tensorboard else [])]

    def _each(self, hook: str, *args) -> None:
        for cb in self.all_callbacks():
            method = getattr(cb, hook, None)  # any object with some of the hooks will do
            if method is not None:
                method(self, *args)

    def _stop_reason(self) -> str:
        """Why a feature ends the run before config.epochs (early stopping), or ""."""
        return next((reason for cb in self.features if (reason := cb.stop_reason(self))), "")

    def _kept_weights(self) -> dict | None:
        """The weights the run keeps instead of the model's own (the average), or None."""
        for cb in self.features:
            if (weights := cb.kept_weights()) is not None:
                return weights
        return None

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        """Train to config.epochs; returns the per-epoch metrics history."""
        if self.run is not None and self.dist.is_main:  # a read-only folder or a full disk fails now
            runs.check_writable(self.run, self.checkpoint_bytes())
            runs.remove_temporaries(self.run)  # left by a write that a kill cut short
            if self._saved_step is not None and self._saved_step == self.state.step:  # resumed
                self._write_derived()
        self._stop_requested = False
        self._each("on_fit_start")
        stopped = ""
        try:
            with self._deferred_sigint():
                # Asked before each epoch: a run killed after the checkpoint of its stopping epoch ends at once.
                while self.state.epoch < self.config.epochs and not (stopped := self._stop_reason()):
                    self._train_epoch()
                    if self._stop_requested:
                        self._interrupted()
                        raise TrainingInterrupted(
                            f"stopped in epoch {self.state.epoch + 1} at step {self.state.step}; checkpoint saved"
                            + (f". Resume with: vaekit resume {self.run}" if self.run else ""))
                    metrics = self._end_epoch()
                    self._each("on_epoch_end", metrics)
            self._each("on_train_end")  # the features load the weights kept, then plots see them
            if stopped and self.dist.is_main:
                messages.epoch(stopped)
            self._set_status("complete", stopped)
        finally:
            self._each("on_fit_end")
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
                   disable=None if cfg.progress and self.dist.is_main else True,  # None: on a terminal only
                   leave=False, dynamic_ncols=True)  # the epoch's line replaces its bar
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
        """One step with its schedules, sums, progress, step hooks and mid-epoch checkpoint."""
        cfg, st = self.config, self.state
        weight = kl_weight(st.step, total_steps, cfg, n_batches)
        lr = learning_rate(st.step, total_steps, cfg)
        for cb in self.features:  # plateau's reductions
            lr = cb.learning_rate(lr)
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
        self._each("on_step_end", {"loss": rec + kl, "reconstruction": rec, "kl": kl, "kl_weight": weight, "lr": lr})
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
        self._each("on_train_epoch_end", metrics)
        # Validation and keep-best see the weights the run keeps; every rank sees the same
        # all-reduced val_loss, so all agree on the best epoch.
        with self._holding(self._kept_weights()):
            if self.val_data is not None:
                metrics.update({f"val_{k}": v for k, v in self.evaluate(self.val_data, shard=True).items()})
            self._each("on_validation_end", metrics)
        self._each("on_metrics", metrics)  # derived figures (e.g. perplexity) join the epoch's metrics
        st.epoch += 1
        st.batch_in_epoch = 0
        st.sums = {}
        st.history.append(metrics)
        self.epoch_start_shuffle = self.shuffle.get_state()
        self.save_checkpoint()
        if self.dist.is_main and self._logs_epoch(st.epoch, metrics):  # with or without the bar: the run's log
            messages.epoch(epoch_line(metrics))  # through logging (vaekit.messages)
        return metrics

    def _logs_epoch(self, epoch: int, metrics: dict) -> bool:
        """Whether epoch's line is printed: every epoch of a run of up to LOGGED_EPOCHS, else about that many
        lines (the first, the last, every k-th, and any epoch that changed the learning rate). A small table
        trains hundreds of epochs to its min_steps; metrics.jsonl keeps every epoch either way."""
        every = math.ceil(self.config.epochs / LOGGED_EPOCHS)
        return (every == 1 or epoch in (1, self.config.epochs) or epoch % every == 0
                or "lr_reduced_to" in metrics)

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
        """Mean negative ELBO, reconstruction and KL per example (nats), with fixed noise; with free bits,
        also `objective`: what training minimises at full KL weight, reconstruction + the sum over
        latent dimensions of max(that dimension's mean KL, free_bits), which KeepBest selects on.

        shard=True (a collective: every rank must call it) splits the data over the processes.
        """
        ctx = self.dist if shard else distributed.Dist()
        was_training = self.model.training
        self.model.eval()
        totals = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
        kl_dims = torch.zeros(self.model.latent_dim, dtype=torch.float64)  # (D,) summed over examples
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
                kl_dims += terms.kl_per_dim.double().sum(0).cpu()
        summed = ctx.all_sum({"rec": totals["reconstruction"], "kl": totals["kl"]})
        totals = {"reconstruction": summed["rec"], "kl": summed["kl"], "loss": summed["rec"] + summed["kl"]}
        self.model.train(was_training)
        out = {k: v / len(data) for k, v in totals.items()}
        if self.config.free_bits > 0:
            kl_dims = ctx.all_sum_tensor(kl_dims) / len(data)
            out["objective"] = out["reconstruction"] + float(kl_dims.clamp(min=self.config.free_bits).sum())
        return out

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
        optim_tensors, param_groups = checkpoint.optimizer_tensors(self.optimizer)
        callback_tensors, callback_values = checkpoint.callback_tensors(self.all_callbacks())
        tensors.update(optim_tensors | callback_tensors)
        tensors["rng.torch"] = rng_states[0]
        tensors.update({f"rng.torch.{r}": state for r, state in enumerate(rng_states) if r})
        tensors["rng.shuffle_epoch_start"] = self.epoch_start_shuffle
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"trainer": json.dumps(asdict(self.state)), "param_groups": param_groups,
                "scaler": json.dumps(self.scaler.state_dict()), "callbacks": callback_values}
        # The checkpoint is one file, written first and atomically: it alone is what resume reads,
        # so a kill between the files below leaves at worst an older model.safetensors/metrics.
        runs.save_tensors(self.run / runs.CHECKPOINT, tensors, meta)
        self._saved_step = self.state.step
        self._write_derived()
        self._set_status("running")

    def _write_derived(self) -> None:
        """model.safetensors and metrics.jsonl as of the checkpoint just saved or loaded. fit() also
        writes them on resume: a kill after the checkpoint but before these files left them one
        checkpoint behind, and a run killed after its last checkpoint trains no further step that
        would write them again (its final weights were lost before this)."""
        if all(cb.saves_weights(self) for cb in self.features):  # keep-best: only at the best epoch's end
            runs.save_tensors(self.run / runs.WEIGHTS, self._kept_weights() or self.model.state_dict())
        lines = "".join(json.dumps(m) + "\n" for m in self.state.history)
        runs.atomic_write(self.run / runs.METRICS, lines.encode())

    def load_checkpoint(self) -> None:
        """Restore everything save_checkpoint wrote, so training continues exactly."""
        path = self.run / runs.CHECKPOINT
        tensors = runs.load_tensors(path)
        meta = runs.tensors_metadata(path)
        try:
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            checkpoint.load_optimizer(self.optimizer, tensors, meta["param_groups"], self.device)
            self.scaler.load_state_dict(json.loads(meta["scaler"]))
            saved = json.loads(meta["trainer"])
            states = checkpoint.callback_states(tensors, meta, saved, self.config.average_from)
            self.state = TrainState(**saved)
            for cb in self.all_callbacks():
                if hasattr(cb, "load_state_dict") and cb.state_key in states:
                    cb.load_state_dict({k: v.to(self.device) if torch.is_tensor(v) else v
                                        for k, v in states[cb.state_key].items()})
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

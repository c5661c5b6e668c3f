"""Features of training as callbacks, each carrying its own state (the model: Lightning's
callbacks/weight_averaging.py): weight averaging, keep-best, early stopping, learning-rate reduction
on plateau, TensorBoard, the training curve and the collapse monitor. The checkpoint stores every
callback's `state_dict()`, so a resumed run restores every feature; the trainer loop only calls the hooks.

Hooks, in the order the trainer calls them (all optional: any object with some of them will do;
`Callback` is the base with no-op hooks):

    on_fit_start(trainer)                 fit() begins (after a resume's load_checkpoint)
    on_step_end(trainer, logs)            after each optimizer step; logs: loss, reconstruction, kl,
                                          kl_weight, lr of the step's batch
    on_train_epoch_end(trainer, metrics)  an epoch's batches are done; validation comes next
    on_validation_end(trainer, metrics)   after validation, while the model holds kept_weights()
    on_metrics(trainer, metrics)          add derived figures to the epoch's metrics before they are saved
    on_epoch_end(trainer, metrics)        the epoch is saved (checkpoint, metrics.jsonl)
    on_train_end(trainer)                 every epoch is done; the model should end on the weights kept
    on_fit_end(trainer)                   fit() ends, however (also after Ctrl-C or an error)

and questions the trainer asks of its own features: `kept_weights()`, the weights the run keeps
instead of the model's own (None: the model's), `saves_weights(trainer)`, whether this checkpoint
also writes model.safetensors, `learning_rate(lr)`, the learning rate of the next step given the
schedule's, and `stop_reason(trainer)`, asked before each epoch: a sentence to end the run
(complete) before `epochs`, or "" to go on. Within a hook the trainer calls its own features first (averaging, then
keep-best: they settle which weights the others see), then the caller's callbacks, then TensorBoard
(it logs the metrics the others completed).

State: `state_dict()` returns names -> tensors or JSON values; the checkpoint holds the tensors as
`<state_key>.<name>` (on load they arrive on the trainer's device) and the rest as JSON. The keys
model, optim and rng are the trainer's own.
"""
from __future__ import annotations

import math
import time
import warnings

import torch

from .. import runs, visual
from ..data import iterate_batches
from ..objectives import active_units


class Callback:
    """Base class: every hook a no-op, no state. Subclasses override what they need."""

    @property
    def state_key(self) -> str:
        """The name of this callback's state in the checkpoint."""
        return type(self).__name__

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def kept_weights(self) -> dict | None:
        return None

    def saves_weights(self, trainer) -> bool:
        return True

    def learning_rate(self, lr: float) -> float:
        return lr

    def stop_reason(self, trainer) -> str:
        return ""

    def on_fit_start(self, trainer) -> None:
        pass

    def on_step_end(self, trainer, logs: dict) -> None:
        pass

    def on_train_epoch_end(self, trainer, metrics: dict) -> None:
        pass

    def on_validation_end(self, trainer, metrics: dict) -> None:
        pass

    def on_metrics(self, trainer, metrics: dict) -> None:
        pass

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        pass

    def on_train_end(self, trainer) -> None:
        pass

    def on_fit_end(self, trainer) -> None:
        pass


class WeightAveraging(Callback):
    """From epoch `average_from` on, the run keeps the mean of the weights at the end of each epoch
    (stochastic weight averaging, Izmailov et al. 2018; averaged iterates train LSTM language models
    well, Merity et al. 2018). Validation, keep-best and model.safetensors see the mean; training
    goes on from the latest weights. Integer buffers (batch-norm counters) take the latest value."""

    state_key = "average"  # the checkpoint's tensors are average.<name>, as before callbacks

    def __init__(self, average_from: int):
        self.average_from = average_from
        self.average: dict | None = None  # name -> tensor: the running mean
        # Epochs in the mean, counted rather than inferred from average_from: a resume with an
        # earlier average_from must not claim epochs the mean never saw.
        self.epochs = 0

    def state_dict(self) -> dict:
        return {} if self.average is None else {**self.average, "epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.average = {k: v for k, v in state.items() if torch.is_tensor(v)} or None
        self.epochs = state["epochs"] if self.average is not None else 0

    def kept_weights(self) -> dict | None:
        return self.average

    @torch.no_grad()
    def on_train_epoch_end(self, trainer, metrics: dict) -> None:
        epoch = trainer.state.epoch + 1  # the epoch that just ended
        if epoch < self.average_from:  # also drops a mean that a resume with a later average_from no longer wants
            self.average, self.epochs = None, 0
            return
        weights = trainer.model.state_dict()
        if self.average is None or epoch == self.average_from:
            self.average = {k: v.detach().clone() for k, v in weights.items()}
            self.epochs = 1
        else:
            self.epochs += 1
            for k, v in weights.items():
                if v.is_floating_point():
                    self.average[k].add_(v - self.average[k], alpha=1 / self.epochs)
                else:
                    self.average[k].copy_(v)
        metrics["averaged_epochs"] = self.epochs

    def on_train_end(self, trainer) -> None:
        if self.average is not None:  # what follows (plots, samples, the caller) sees the mean
            trainer.model.load_state_dict(self.average)


def validation_figure(metrics: dict) -> float:
    """What keep-best, early stopping and the plateau schedule compare: the validation objective
    training minimises (with free bits: `val_objective`), else the validation -ELBO; NaN if none."""
    return metrics.get("val_objective", metrics.get("val_loss", math.nan))


class KeepBest(Callback):
    """The run keeps the weights of the epoch with the lowest finite validation -ELBO (early
    stopping by selection; the first of equals; the first epoch if none is finite). Only that
    epoch's end writes model.safetensors; the checkpoint still holds the last step, for resume.

    With free bits, the validation figure is the objective training minimises (`val_objective`: the
    KL up to the floor is free), not the -ELBO: a run asked to carry at least that much information
    in its code would otherwise keep the epoch before its code was in use (a text run with free bits
    1 kept epoch 1, at KL 6.5 nats, over later epochs at 24; issue 25)."""

    def __init__(self):
        self.best_epoch: int | None = None  # None until chosen from the history or a checkpoint
        self.best_loss = math.nan
        self.weights: dict | None = None  # a CPU copy of the best epoch's weights, once seen here

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch or 0,
                "best_loss": self.best_loss if math.isfinite(self.best_loss) else None}

    def load_state_dict(self, state: dict) -> None:
        self.best_epoch = state["best_epoch"]
        self.best_loss = math.nan if state["best_loss"] is None else state["best_loss"]

    def on_fit_start(self, trainer) -> None:
        if self.best_epoch is None:  # a new run, or a checkpoint written without keep-best
            self.best_epoch = 0
            for metrics in trainer.state.history:
                self._consider(metrics)

    def _consider(self, metrics: dict) -> bool:
        """Take this epoch as the best if it is; True if it is."""
        loss = validation_figure(metrics)
        if self.best_epoch == 0 or (math.isfinite(loss) and not loss >= self.best_loss):
            self.best_epoch, self.best_loss = metrics["epoch"], loss
            return True
        return False

    def on_validation_end(self, trainer, metrics: dict) -> None:
        if self._consider(metrics):  # the model holds the weights the run keeps (the mean, with averaging)
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
        metrics["best_epoch"] = self.best_epoch

    def saves_weights(self, trainer) -> bool:
        st = trainer.state
        return (self.best_epoch or 0) == st.epoch and st.batch_in_epoch == 0

    def on_train_end(self, trainer) -> None:
        # After a resume past the best epoch, its weights are those model.safetensors holds.
        trainer.model.load_state_dict(self.weights if self.weights is not None
                                      else runs.load_tensors(trainer.run / runs.WEIGHTS))


class _Patience(Callback):
    """Counts the epochs since the validation -ELBO last improved (finite and strictly lower than
    the best so far: Keras's min_delta 0), for EarlyStopping and ReduceLROnPlateau. A checkpoint
    without this state (an older run, or one trained without the feature) replays the history."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_epoch: int | None = None  # None until chosen from the history or a checkpoint; 0: none finite
        self.best_loss = math.nan
        self.wait = 0  # epochs since best_epoch

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch or 0, "wait": self.wait,
                "best_loss": self.best_loss if math.isfinite(self.best_loss) else None}

    def load_state_dict(self, state: dict) -> None:
        self.best_epoch, self.wait = state["best_epoch"], state["wait"]
        self.best_loss = math.nan if state["best_loss"] is None else state["best_loss"]

    def on_fit_start(self, trainer) -> None:
        if self.best_epoch is None:
            self.best_epoch = 0
            for metrics in trainer.state.history:
                self._observe(metrics)

    def _observe(self, metrics: dict) -> bool:
        """Count this epoch; True if its validation figure is the best so far."""
        loss = validation_figure(metrics)
        if math.isfinite(loss) and not loss >= self.best_loss:  # the first finite loss beats NaN
            self.best_epoch, self.best_loss, self.wait = metrics["epoch"], loss, 0
            return True
        self.wait += 1
        return False


class EarlyStopping(_Patience):
    """Ends the run (complete) once the validation -ELBO has not improved for `patience` epochs in
    a row (Keras's EarlyStopping with min_delta 0; Prechelt 1998). The run's weights stay the last
    epoch's (the mean, with averaging) unless keep_best keeps the best epoch's."""

    state_key = "early_stop"

    def on_validation_end(self, trainer, metrics: dict) -> None:
        self._observe(metrics)

    def stop_reason(self, trainer) -> str:
        if self.wait < self.patience:
            return ""
        best = (f"best epoch {self.best_epoch}" if self.best_epoch
                else "no epoch had a finite validation -ELBO")
        return (f"stopped early at epoch {trainer.state.epoch} ({best}): the validation -ELBO did not improve "
                f"for {self.wait} epochs (early_stop {self.patience})")


class ReduceLROnPlateau(_Patience):
    """Multiplies the learning rate by `factor` (not below `lr_min`) each time the validation -ELBO
    has not improved for `patience` epochs, then counts afresh (Keras's ReduceLROnPlateau with
    min_delta 0 and no cooldown). Its state is the number of reductions, so a resumed run (even
    with another lr) continues from the same point of the schedule."""

    state_key = "lr_plateau"

    def __init__(self, factor: float, patience: int, lr_min: float = 0.0):
        super().__init__(patience)
        self.factor, self.lr_min = factor, lr_min
        self.reductions = 0

    def state_dict(self) -> dict:
        return super().state_dict() | {"reductions": self.reductions}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.reductions = state["reductions"]

    def learning_rate(self, lr: float) -> float:
        return max(lr * self.factor ** self.reductions, self.lr_min)

    def on_validation_end(self, trainer, metrics: dict) -> None:
        lr = self.learning_rate(trainer.config.lr)
        metrics["train_lr"] = lr  # what this epoch trained with
        if not self._observe(metrics) and self.wait >= self.patience:
            self.wait = 0
            if lr > self.lr_min:
                self.reductions += 1
                metrics["lr_reduced_to"] = self.learning_rate(trainer.config.lr)


class TensorBoard(Callback):
    """TensorBoard events in RUN/tb (rank 0): the step's loss terms, KL weight and learning rate
    every `log_every` steps, and each epoch's metrics. No state: a resumed run purges the events
    a killed run logged after its last checkpoint."""

    def __init__(self, log_every: int):
        self.log_every = log_every
        self.writer = None  # the SummaryWriter while fit() runs; per-kind callbacks add images to it

    def on_fit_start(self, trainer) -> None:
        if trainer.run is None or self.writer is not None or not trainer.dist.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter  # slow to import, and only for runs on disk

        self.writer = SummaryWriter(str(trainer.run / "tb"), purge_step=trainer.state.step or None)

    def on_step_end(self, trainer, logs: dict) -> None:
        if self.writer and trainer.state.step % self.log_every == 0:
            for key, value in logs.items():
                self.writer.add_scalar(f"train_step/{key}", value, trainer.state.step)

    def on_metrics(self, trainer, metrics: dict) -> None:
        if not self.writer:
            return
        for key, value in metrics.items():
            if key not in ("epoch", "step"):
                split, _, name = key.partition("_")
                self.writer.add_scalar(f"{split}/{name}", value, metrics["epoch"])
        self.writer.flush()  # before the checkpoint: a resume purges only what came after it

    def on_fit_end(self, trainer) -> None:
        if self.writer:
            self.writer.close()
            self.writer = None


class TrainingCurve(Callback):
    """plots/training_curve.png, redrawn after an epoch at most every `every` seconds (a tabular
    epoch can take milliseconds, a plot ~0.1 s) and at the end. No state: it draws the history."""

    def __init__(self, every: float = 10.0):
        self.every, self.drawn = every, -math.inf

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if time.monotonic() - self.drawn >= self.every:
            self.on_train_end(trainer)

    def on_train_end(self, trainer) -> None:
        if trainer.run is None or not trainer.state.history:
            return
        (trainer.run / "plots").mkdir(exist_ok=True)
        visual.training_curve(trainer.state.history, trainer.run / "plots" / "training_curve.png")
        self.drawn = time.monotonic()


class CollapseMonitor(Callback):
    """Warns when the code collapses (Bowman et al. 2016's posterior collapse).

    Each epoch it adds `val_active_units` (on up to `n_examples` validation examples) to the
    metrics, and warns once ("vaekit: warning: ..." on the CLI) when the KL per example stays
    below `kl_threshold` nats, or no unit is active, for `patience` epochs and `min_steps` optimizer
    steps in a row. The steps matter for small tables: an epoch of 150 rows is 2-3 steps, and every
    such run's code sits near zero KL for its first few epochs before it is used (iris: KL 0.008 at
    epoch 3, 1.29 at epoch 300), which three epochs alone called a collapse. Its state (the streak,
    and whether it warned) resumes with the run.
    """

    def __init__(self, val, patience: int = 3, kl_threshold: float = 0.1, n_examples: int = 500,
                 min_steps: int = 250):
        self.val = val.subset(torch.arange(min(n_examples, len(val)))) if val is not None else None
        self.patience = patience
        self.kl_threshold = kl_threshold
        self.min_steps = min_steps
        self.collapsed_epochs = 0
        self.collapsed_steps = 0
        self.last_step = 0
        self.warned = False

    def state_dict(self) -> dict:
        return {"collapsed_epochs": self.collapsed_epochs, "collapsed_steps": self.collapsed_steps,
                "last_step": self.last_step, "warned": self.warned}

    def load_state_dict(self, state: dict) -> None:
        self.collapsed_epochs, self.warned = state["collapsed_epochs"], state["warned"]
        # a checkpoint from before the steps were counted: its streak counts as long enough in steps
        self.collapsed_steps = state.get("collapsed_steps", self.min_steps if self.collapsed_epochs else 0)
        self.last_step = state.get("last_step", 0)

    @torch.no_grad()
    def on_metrics(self, trainer, metrics: dict) -> None:
        kl = metrics.get("val_kl", metrics.get("train_kl"))
        active = None
        if self.val is not None and len(self.val):
            active = self._active_units(trainer)
            metrics["val_active_units"] = active
        collapsed = (kl is not None and kl < self.kl_threshold) or active == 0
        steps, self.last_step = trainer.state.step - self.last_step, trainer.state.step
        self.collapsed_epochs = self.collapsed_epochs + 1 if collapsed else 0
        self.collapsed_steps = self.collapsed_steps + steps if collapsed else 0
        if self.collapsed_epochs >= self.patience and self.collapsed_steps >= self.min_steps and not self.warned:
            self.warned = True
            warnings.warn(
                f"the latent code looks collapsed: KL {kl:.3f} nats per example and {active} active units "
                f"for {self.collapsed_epochs} epochs (epoch {metrics['epoch']}); the decoder ignores z. Try KL "
                "annealing or free bits (command line: --kl-warmup-steps, --kl-cycles, --free-bits; vaekit.VAE: "
                "train_options={'kl_warmup_epochs': 10} or {'free_bits': 0.5}), or a weaker decoder",
                stacklevel=2)

    def _active_units(self, trainer) -> int:
        model = trainer.model
        was_training = model.training
        model.eval()
        means = [model.encode(b.to(trainer.device)).mean.float().cpu() for b in iterate_batches(self.val, 250)]
        model.train(was_training)
        return active_units(torch.cat(means))[0]

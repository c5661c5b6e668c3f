"""What a training run is asked to do: TrainConfig, and the schedules as pure functions of the step
(so a resumed run continues them exactly)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from ..errors import VaekitError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training data (a kind may default otherwise)
    min_steps: int = 0  # train at least this many optimiser steps: a small data set gets more epochs than
    # `epochs` (tables: 2,000, chosen on imputation of held-out cells, bench/RESULTS.md); 0: off. A typed
    # --epochs alone turns it off
    batch_size: int = 128  # examples per optimizer step
    lr: float = 1e-3  # Adam's learning rate
    lr_schedule: str = "constant"  # constant | cosine (from lr down to lr_min over the run's steps) |
    # plateau (times lr_factor whenever the validation -ELBO has not improved for lr_patience epochs).
    # Cosine as Loshchilov & Hutter 2017; a function of the step, so a resumed run continues it exactly.
    lr_min: float = 0.0  # the cosine schedule's final learning rate; plateau's floor
    lr_factor: float = 0.5  # plateau: the learning rate is multiplied by this at each reduction
    lr_patience: int = 2  # plateau: epochs without a better validation -ELBO before each reduction
    early_stop: int = 0  # stop when the validation -ELBO has not improved for N epochs in a row;
    # 0 = off. The run ends complete; with keep_best its weights are the best epoch's
    seed: int = 42  # torch's seed for initialisation, batches and draws
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
    progress: bool = True  # the per-batch progress bar, on a terminal only (the per-epoch lines are printed either way)

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.min_steps >= 0, f"min_steps must be >= 0 (0: off), got {self.min_steps}"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), "learning rate must be a positive number"),
            (self.lr_schedule in ("constant", "cosine", "plateau"), "lr_schedule must be constant, cosine or plateau"),
            (0 < self.lr_factor < 1, f"lr_factor must be between 0 and 1 (exclusive), got {self.lr_factor}"),
            (self.lr_patience >= 1, f"lr_patience must be at least 1, got {self.lr_patience}"),
            (self.early_stop >= 0, f"early_stop must be >= 0 (0: off), got {self.early_stop}"),
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
    ELBO (beta 1, no annealing; free_bits > 0 keeps a per-dimension KL floor), a constant lr, no early stop, only
    the encoder trained; with validation data the best epoch is kept. `options` set other fields
    (defaults: REFINE_DEFAULTS, then base's)."""
    fixed = {"lr_schedule": "constant", "beta": 1.0, "kl_warmup_steps": 0, "kl_warmup_epochs": 0.0, "kl_cycles": 0,
             "average_from": 0, "early_stop": 0, "trainable": "encoder", "keep_best": validated}
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
    """Learning rate at a step: constant, or cosine from lr to lr_min (Loshchilov & Hutter 2017).
    Plateau's reductions depend on validation, not the step: this gives its starting lr, and the
    ReduceLROnPlateau callback scales it."""
    if config.lr_schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))
    return config.lr

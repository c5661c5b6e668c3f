"""Training: one trainer for every model, its settings, and its features as callbacks.

- config.py: TrainConfig, and the KL weight and learning rate as functions of the step;
- device.py: the device, mixed precision, where the training data are kept;
- trainer.py: the Trainer loop (exact resume, non-finite skipping, Ctrl-C, data parallelism);
- callbacks.py: weight averaging, keep-best, early stopping, lr reduction on plateau, TensorBoard, the training
  curve, the collapse monitor;
- checkpoint.py: the checkpoint file's layout.
"""
from .callbacks import (
    Callback,
    CollapseMonitor,
    EarlyStopping,
    KeepBest,
    ReduceLROnPlateau,
    TensorBoard,
    TrainingCurve,
    WeightAveraging,
)
from .config import REFINE_DEFAULTS, TrainConfig, kl_weight, learning_rate, refine_config
from .device import autocast_context, check_runtime, place_data, resolve_device
from .trainer import Trainer, TrainingInterrupted, TrainState

__all__ = ["Callback", "CollapseMonitor", "EarlyStopping", "KeepBest", "ReduceLROnPlateau", "REFINE_DEFAULTS",
           "TensorBoard", "TrainConfig", "TrainState",
           "Trainer", "TrainingCurve", "TrainingInterrupted", "WeightAveraging", "autocast_context", "check_runtime",
           "kl_weight", "learning_rate", "place_data", "refine_config", "resolve_device"]

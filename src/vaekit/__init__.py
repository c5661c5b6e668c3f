"""vaekit: variational autoencoders from images, sentences or tables to samples, reconstructions and embeddings."""

from .api import Run, load, refine, resume, train
from .errors import VaekitError
from .estimator import VAE
from .evaluation import evaluate
from .modalities import ImageDataConfig, TabularDataConfig, TextDataConfig
from .models import MODELS, build_model
from .parametric_umap import ParametricUMAP
from .training import TrainConfig, Trainer
from .version import __version__

__all__ = ["ImageDataConfig", "MODELS", "ParametricUMAP", "Run", "TabularDataConfig", "TextDataConfig", "TrainConfig",
           "Trainer", "VAE", "VaekitError", "__version__", "build_model", "evaluate", "load", "refine", "resume",
           "train"]

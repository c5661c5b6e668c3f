"""vaekit: variational autoencoders from images or sentences to samples, reconstructions and embeddings."""

__version__ = "0.1.0"

from .api import Run, load, refine, resume, train  # noqa: E402
from .errors import VaekitError  # noqa: E402
from .estimator import VAE  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .image import ImageDataConfig  # noqa: E402
from .models import MODELS, build_model  # noqa: E402
from .parametric_umap import ParametricUMAP  # noqa: E402
from .tabular import TabularDataConfig  # noqa: E402
from .training import TrainConfig, Trainer  # noqa: E402

__all__ = ["ImageDataConfig", "MODELS", "ParametricUMAP", "Run", "TabularDataConfig", "TrainConfig", "Trainer", "VAE",
           "VaekitError", "build_model", "evaluate", "load", "refine", "resume", "train"]

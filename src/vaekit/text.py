"""The text job: sentences -> tokenizer -> padded id tensors, and what to show while training.

A sentence becomes its word ids followed by <eos>, post-padded with 0 to `max_len` (the
document's padding) and truncated there; `max_len` defaults to the 95th percentile of the
training lengths. The tokenizer is fitted on the training split only and saved as
`tokenizer.json` in the run, so generation uses exactly the same pipeline.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .api import Run
from .data import Prepared, TensorData
from .errors import MAX_OUTPUTS, VaekitError, check_count, check_finite
from .generate import DecodeConfig, decode

KIND = "text"
DEFAULT_MODEL = "text-rnn"
DEFAULT_SCORE = "elbo"  # `vaekit anomalies` without --score
TOKENIZER = "tokenizer.json"
DECODE_CHUNK = 1000  # codes decoded at once by TextRun.decode
PREPARE_OPTIONS = ("tokenizer",)
# What keeps a text VAE's code in use, as the CLI's defaults for `train text`: the document's batch
# of 32, cyclical KL annealing (Fu et al. 2019) and a free-bits floor per dimension (Kingma et al. 2016).
# keep_best: a text VAE overfits a small corpus within a run's epochs (PTB's valid -ELBO rose by 0.3
# nats over the last 7 of 20 epochs, bench/RESULTS.md), so the run keeps its best validation epoch.
TRAIN_DEFAULTS = {"batch_size": 32, "kl_cycles": 4, "free_bits": 0.1, "keep_best": True}


@dataclass(frozen=True)
class TextDataConfig:
    data: str = "stdlib-docs"  # the embedded corpus (Python docs prose, PSF licence), "ptb", a text file or a CSV
    column: str | None = None  # CSV column (name or 0-based index)
    val_data: str | None = None  # an explicit validation file / "ptb:valid" instead of a random split
    val_fraction: float = 0.2  # the document's split: 20%, seed 42
    split_seed: int = 42
    max_len: int | None = None  # tokens per sentence incl. <eos>; default: 95th percentile
    data_dir: str | None = None  # where named data sets are looked up (else $VAEKIT_DATA)
    limit: int | None = None  # use only the first N training sentences (quick runs)
    bucket: bool = True  # batch sentences of similar length (less padding to compute)

    def __post_init__(self):
        if self.max_len is not None and not 2 <= self.max_len <= 10_000:
            raise VaekitError(f"max_len must be between 2 and 10000, got {self.max_len}")
        if self.limit is not None and self.limit < 2:
            raise VaekitError(f"limit must be at least 2, got {self.limit}")


DataConfig = TextDataConfig


def read_texts(source: str, config: TextDataConfig, default_split: str = "train") -> list[str]:
    """Sentences of `source`, which may name a split: "ptb:valid"."""
    from .data.text import load_texts

    name, _, split_name = source.partition(":")
    if split_name and name == "ptb" and not Path(source).exists():
        source, default_split = name, split_name
    if source != "ptb":
        default_split = "train"  # files and the embedded corpus have one split only
    return load_texts(source, split=default_split, data_dir=config.data_dir, column=config.column)


def encode_sentences(tokenizer, sentences: list[str], max_len: int) -> torch.Tensor:
    """(N, max_len) int64 ids: words, <eos>, then padding 0."""
    return torch.from_numpy(np.asarray(tokenizer.pad(tokenizer.texts_to_sequences(sentences), max_len),
                                       dtype=np.int64))


def prepare(config: TextDataConfig, run: Path | None = None, tokenizer=None) -> Prepared:
    """Train/validation id tensors. A new run fits the tokenizer on the training split; a resumed
    run reuses its saved tokenizer.json so the ids stay exactly the same."""
    sentences = read_texts(config.data, config)
    if config.limit is not None:
        sentences = sentences[:config.limit]
    if config.val_data:
        train_s, val_s = sentences, read_texts(config.val_data, config, default_split="valid")
    else:
        order = np.random.default_rng(config.split_seed).permutation(len(sentences))
        n_val = int(round(len(sentences) * config.val_fraction))
        if not 0 < config.val_fraction < 1 or n_val < 1 or n_val >= len(sentences):
            raise VaekitError(f"cannot split {len(sentences)} sentences with validation fraction "
                              f"{config.val_fraction}")
        train_s = [sentences[i] for i in order[n_val:]]
        val_s = [sentences[i] for i in order[:n_val]]
    return prepare_arrays(train_s, val_s, config, run, tokenizer)


def prepare_arrays(train_s: list[str], val_s: list[str], config: TextDataConfig, run: Path | None = None,
                   tokenizer=None) -> Prepared:
    """The job's data from sentences already split (the estimator's path; prepare() reads files)."""
    from .tokenizer import Tokenizer, TokenizerConfig, length_percentile

    if run is not None and (Path(run) / TOKENIZER).exists():
        tokenizer = Tokenizer.load(Path(run) / TOKENIZER)
    else:
        tokenizer = Tokenizer(tokenizer or TokenizerConfig()).fit(train_s)
    max_len = config.max_len or length_percentile(tokenizer.texts_to_sequences(train_s), 95)
    train = TensorData(encode_sentences(tokenizer, train_s, max_len))
    if config.bucket:
        train.lengths = (train.x != 0).sum(1)  # (N,) tokens incl. <eos>
    val = TensorData(encode_sentences(tokenizer, val_s, max_len))
    files = {TOKENIZER: (json.dumps(tokenizer.to_json()) + "\n").encode()}
    return Prepared(train, val, {"vocab_size": tokenizer.vocab_size, "max_len": max_len}, files,
                    f"{len(train_s)} training and {len(val_s)} validation sentences, vocabulary "
                    f"{tokenizer.vocab_size}, max length {max_len} tokens", )


def callbacks(prepared: Prepared) -> list:
    from .training.callbacks import CollapseMonitor, TrainingCurve

    return [TextCallback(prepared), TrainingCurve(), CollapseMonitor(prepared.val)]


def token_count(data: TensorData) -> int:
    return int((data.x != 0).sum())


class TextCallback:
    """Per-word perplexity in the metrics (counting <eos>, as the PTB literature does), and a few
    reconstructions and prior samples printed and logged to TensorBoard each epoch."""

    def __init__(self, prepared: Prepared, n_show: int = 3, seed: int = 0):
        self.val_tokens = token_count(prepared.val)
        self.train_tokens = token_count(prepared.train)
        self.n_train, self.n_val = len(prepared.train), len(prepared.val)
        self.show = prepared.val.x[:n_show]
        self.tokenizer_json = json.loads(prepared.files[TOKENIZER])
        self.seed = seed

    def on_metrics(self, trainer, metrics: dict) -> None:
        metrics["train_ppl"] = math.exp(min(50.0, metrics["train_loss"] * self.n_train / self.train_tokens))
        if "val_loss" in metrics:
            metrics["val_ppl"] = math.exp(min(50.0, metrics["val_loss"] * self.n_val / self.val_tokens))
        metrics["tokens_per_s"] = metrics["examples_per_s"] * self.train_tokens / self.n_train

    @torch.no_grad()
    def on_epoch_end(self, trainer, metrics: dict) -> None:
        from tqdm.auto import tqdm

        from .tokenizer import Tokenizer

        tokenizer = Tokenizer.from_json(self.tokenizer_json)
        model = trainer.model
        was_training = model.training
        model.eval()
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            x = self.show.to(trainer.device)
            recon = decode(model, model.encode(x).mean)
            samples = decode(model, torch.randn(len(x), model.latent_dim, device=trainer.device))
        model.train(was_training)
        lines = [f"  input: {tokenizer.decode(a.tolist())}\n  recon: {tokenizer.decode(b.tolist())}"
                 for a, b in zip(x, recon)]
        lines += [f"  prior: {tokenizer.decode(s.tolist())}" for s in samples]
        text = "\n".join(lines)
        tqdm.write(text)
        if trainer.writer:
            trainer.writer.add_text("generated", "\n".join("    " + line for line in lines), trainer.state.epoch)


class TextRun(Run):
    """A trained sentence VAE: sentences in, latent codes and sentences out."""

    def __init__(self, path, device: str = "cpu", precision: str = "fp32"):
        super().__init__(path, device, precision)
        from . import runs
        from .tokenizer import Tokenizer

        self.tokenizer = Tokenizer.from_json(runs.read_json(self.path / TOKENIZER))
        if self.tokenizer.vocab_size != self.model.config.vocab_size:
            raise VaekitError(f"{self.path / TOKENIZER} has {self.tokenizer.vocab_size} words but the "
                              f"model was trained with {self.model.config.vocab_size}: they do not belong together")

    def prepare(self, sentences) -> torch.Tensor:
        if isinstance(sentences, str):
            sentences = [sentences]
        if not len(sentences):
            raise VaekitError("no sentences given")
        return encode_sentences(self.tokenizer, list(sentences), self.model.config.max_len).to(self.device)

    def unknown_words(self, sentence: str) -> list[str]:
        """Words of `sentence` that are not in the vocabulary (they become <unk>)."""
        return self.tokenizer.unknown_words(sentence)

    def texts(self, ids: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode(row.tolist()) for row in ids]

    @torch.no_grad()
    def decode(self, z, config: DecodeConfig = DecodeConfig()) -> list[str]:
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=self.device)
        if z.dim() != 2 or z.shape[1] != self.model.latent_dim:
            raise VaekitError(f"latent codes must have shape (N, {self.model.latent_dim}), got {tuple(z.shape)}")
        # In chunks: the decoder's states and logits for every code at once outgrow memory.
        return [s for i in range(0, len(z), DECODE_CHUNK)
                for s in self.texts(decode(self.model, z[i:i + DECODE_CHUNK], config))]

    def sample(self, n: int, seed: int | None = None, temperature: float = 1.0,
               config: DecodeConfig = DecodeConfig()) -> list[str]:
        """n sentences decoded from prior draws."""
        return self.decode(self.prior_draws(n, seed, temperature), config)

    def reconstruct(self, sentences, config: DecodeConfig = DecodeConfig()) -> list[str]:
        return self.decode(self.encode(sentences), config)

    def vary(self, sentence: str, n: int = 5, spread: float = 1.0, config: DecodeConfig = DecodeConfig(),
             seed: int | None = None) -> list[str]:
        """n variations of `sentence`: codes drawn from its posterior with the standard deviation
        scaled by `spread` (0 = the posterior mean every time), each decoded with `config`."""
        n = check_count("n (the number of variations)", n, 1, MAX_OUTPUTS)
        spread = check_finite("spread", spread, 0)
        if seed is not None:
            torch.manual_seed(seed)
        mean, log_var = self.encode([sentence], return_log_var=True)
        mean, std = torch.from_numpy(mean), torch.from_numpy(log_var).mul(0.5).exp()
        z = mean + spread * std * torch.randn(n, self.model.latent_dim)  # (n, D)
        return self.decode(z, config)

    def interpolate(self, a: str, b: str, steps: int = 5, config: DecodeConfig = DecodeConfig()) -> list[str]:
        """Sentences decoded along the straight line between the codes of a and b."""
        steps = check_count("steps", steps, 2, MAX_OUTPUTS)
        z = self.encode([a, b])
        t = np.linspace(0, 1, steps)[:, None]
        return self.decode((1 - t) * z[0] + t * z[1], config)


RUN_CLASS = TextRun

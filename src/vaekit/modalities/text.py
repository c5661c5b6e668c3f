"""Sentences: sentences -> tokenizer -> padded id tensors, and what to show while training.

A sentence becomes its word ids followed by <eos>, post-padded with 0 to `max_len` (the
document's padding) and truncated there; `max_len` defaults to the 95th percentile of the
training lengths. The tokenizer is fitted on the training split only and saved as
`tokenizer.json` in the run, so generation uses exactly the same pipeline.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import TensorData, TrainingData
from ..errors import VaekitError
from ..generate import DecodeConfig, decode
from ..outputs import Destination
from ..tokenizer import Tokenizer, TokenizerConfig, length_percentile
from .base import Inputs, Modality

TOKENIZER = "tokenizer.json"
DECODE_CHUNK = 1000  # codes decoded at once


@dataclass(frozen=True)
class TextDataConfig:
    data: str = "stdlib-docs"  # the embedded corpus (Python docs prose, PSF licence), "ptb", a text file or a CSV
    column: str | None = None  # CSV column (name or 0-based index)
    val_data: str | None = None  # an explicit validation file / "ptb:valid" instead of a random split
    val_fraction: float = 0.2  # the document's split: 20%, seed 42
    split_seed: int = 42  # the seed of the random validation split (the same seed, the same split)
    max_len: int | None = None  # tokens per sentence incl. <eos>; default: 95th percentile
    data_dir: str | None = None  # where named data sets are looked up (else $VAEKIT_DATA)
    limit: int | None = None  # use only the first N training sentences (quick runs)
    bucket: bool = True  # batch sentences of similar length (less padding to compute)

    def __post_init__(self):
        if self.max_len is not None and not 2 <= self.max_len <= 10_000:
            raise VaekitError(f"max_len must be between 2 and 10000, got {self.max_len}")
        if self.limit is not None and self.limit < 2:
            raise VaekitError(f"limit must be at least 2, got {self.limit}")


def read_texts(source: str, config: TextDataConfig, default_split: str = "train") -> list[str]:
    """Sentences of `source`, which may name a split: "ptb:valid"."""
    from ..data.text import load_texts

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


def training_data(config: TextDataConfig, run: Path | None = None, tokenizer=None) -> TrainingData:  # noqa: D401
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
    return training_arrays(train_s, val_s, config, run, tokenizer)


def training_arrays(train_s: list[str], val_s: list[str], config: TextDataConfig, run: Path | None = None,
                   tokenizer=None) -> TrainingData:
    """The trainer's data from sentences already split (the estimator's path; training_data() reads files)."""
    if run is not None and (Path(run) / TOKENIZER).exists():
        tokenizer = Tokenizer.load(Path(run) / TOKENIZER)
    else:
        tokenizer = Tokenizer(tokenizer or TokenizerConfig()).fit(train_s)
    sequences = tokenizer.texts_to_sequences(train_s)
    max_len = config.max_len or length_percentile(sequences, 95)
    longer = sum(len(s) > max_len for s in sequences)  # cut at max_len: say so, with the way to keep them
    keeps_all = min(max(map(len, sequences)), 10_000)
    cut = (f" ({longer} training sentence(s) longer, cut there; --max-len {keeps_all} keeps all"
           f"{'' if config.max_len else ', at more cost per step'})" if longer else "")
    train = TensorData(encode_sentences(tokenizer, train_s, max_len))
    if config.bucket:
        train.lengths = (train.x != 0).sum(1)  # (N,) tokens incl. <eos>
    val = TensorData(encode_sentences(tokenizer, val_s, max_len))
    files = {TOKENIZER: (json.dumps(tokenizer.to_json()) + "\n").encode()}
    return TrainingData(train, val, {"vocab_size": tokenizer.vocab_size, "max_len": max_len,
                                      "words": tuple(tokenizer.index_word)}, files,
                    f"{len(train_s)} training and {len(val_s)} validation sentences, vocabulary "
                    f"{tokenizer.vocab_size}, max length {max_len} tokens{cut}", )


def fold_repeats(sentence: str, min_repeats: int = 3, longest_cycle: int = 8) -> str:
    """For display: a sentence that ends in one phrase said over and over (plain argmax decoding of an early
    model loops to the length limit) keeps its first two turns and counts the rest.
    "a b c d c d c d c d" -> "a b c d c d ... (2 more times)"."""
    words, end = sentence.split(), len(sentence.split())
    for n in range(1, longest_cycle + 1):
        turns = 1
        while end >= (turns + 1) * n and words[end - (turns + 1) * n:end - turns * n] == words[-n:]:
            turns += 1
        if turns >= min_repeats:
            more = turns - 2
            return " ".join(words[:end - more * n]) + f" ... ({more} more time{'s' if more > 1 else ''})"
    return sentence


def texts(tokenizer, ids: torch.Tensor) -> list[str]:
    """Sentences of id rows (N, T): words up to <eos>, specials dropped."""
    return [tokenizer.decode(row.tolist()) for row in ids]


def token_count(data: TensorData) -> int:
    return int((data.x != 0).sum())


class TextCallback:
    """Per-word perplexity in the metrics (counting <eos>, as the PTB literature does), and a few
    reconstructions and prior samples printed and logged to TensorBoard each epoch."""

    def __init__(self, prepared: TrainingData, n_show: int = 3, seed: int = 0):
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

        from ..variations import default_decode_config

        tokenizer = Tokenizer.from_json(self.tokenizer_json)
        model = trainer.model
        was_training = model.training
        model.eval()
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            x = self.show.to(trainer.device)
            recon = decode(model, model.encode(x).mean)
            # The prior's draws decoded as `vaekit sample` decodes them (with repetition control).
            samples = decode(model, torch.randn(len(x), model.latent_dim, device=trainer.device),
                             default_decode_config())
        model.train(was_training)
        lines = [f"  input: {tokenizer.decode(a.tolist())}\n  recon: {fold_repeats(tokenizer.decode(b.tolist()))}"
                 for a, b in zip(x, recon)]
        lines += [f"  prior: {tokenizer.decode(s.tolist())}" for s in samples]
        text = "\n".join(lines)
        tqdm.write(text)
        if trainer.writer:
            trainer.writer.add_text("generated", "\n".join("    " + line for line in lines), trainer.state.epoch)


class TextModality(Modality):
    """Sentences: a tokenizer fitted on the training split (tokenizer.json in the run), padded id
    tensors; codes decode to sentences with a DecodeConfig (greedy, beam, top-k/top-p)."""

    name = "text"
    data_names = ("ptb", "stdlib-docs")  # data.text.CORPUS_NAMES
    noun = "sentences"
    DataConfig = TextDataConfig
    default_model = "text-rnn"
    # Chosen by the rule of bench/RESULTS.md ("how the text default score is chosen"): held-out sentences
    # against shuffled and word-replaced ones, AUROC 98.0 (docs) and 98.2 (PTB) against elbo's 75.3 and 77.2.
    default_score = "elbo-per-token"
    # What keeps a text VAE's code in use, as the CLI's defaults for `train text`: the document's batch
    # of 32, cyclical KL annealing (Fu et al. 2019) and a free-bits floor per dimension (Kingma et al. 2016).
    # keep_best: a text VAE overfits a small corpus within a run's epochs (PTB's valid -ELBO rose by 0.3
    # nats over the last 7 of 20 epochs, bench/RESULTS.md), so the run keeps its best validation epoch.
    train_defaults = {"batch_size": 32, "kl_cycles": 4, "free_bits": 0.1, "keep_best": True}
    option_configs = {"tokenizer": TokenizerConfig}
    seed_model = "text-seed"
    run_files = (TOKENIZER,)
    eval_k = 500
    has_reconstruction = False
    makes_text = True
    probe_inputs = False

    def training_data(self, config: TextDataConfig, run: Path | None = None, tokenizer=None) -> TrainingData:
        return training_data(config, run, tokenizer)

    def callbacks(self, prepared: TrainingData) -> list:
        return [TextCallback(prepared), *super().callbacks(prepared)]

    def read_inputs(self, run, source: str, limit: int | None = None) -> Inputs:
        sentences = read_texts(source, run.data_config, default_split="test")[:limit]
        if not sentences:
            raise VaekitError(f"{source} holds no sentences")
        return Inputs(sentences, None, None, sentences)

    def attach(self, run) -> None:
        from ..runs import read_json

        run.tokenizer = Tokenizer.from_json(read_json(run.path / TOKENIZER))
        if run.tokenizer.vocab_size != run.model.config.vocab_size:
            raise VaekitError(f"{run.path / TOKENIZER} has {run.tokenizer.vocab_size} words but the "
                              f"model was trained with {run.model.config.vocab_size}: they do not belong together")

    def to_model(self, run, sentences) -> torch.Tensor:
        if isinstance(sentences, str):
            sentences = [sentences]
        if not len(sentences):
            raise VaekitError("no sentences given")
        return encode_sentences(run.tokenizer, list(sentences), run.model.config.max_len).to(run.device)

    @torch.no_grad()
    def decode(self, run, z: torch.Tensor, config: DecodeConfig | None = None) -> list[str]:
        """Sentences for codes z (N, D). config None: as `vaekit sample` decodes (greedy with repetition
        control); reconstructions pass the plain argmax."""
        if config is None:
            from ..variations import default_decode_config

            config = default_decode_config()
        # In chunks: the decoder's states and logits for every code at once outgrow memory.
        return [s for i in range(0, len(z), DECODE_CHUNK)
                for s in texts(run.tokenizer, decode(run.model, z[i:i + DECODE_CHUNK], config))]

    def reconstruct(self, run, x: torch.Tensor, config: DecodeConfig = DecodeConfig()) -> list[str]:
        return self.decode(run, run.batched(lambda b: run.model.encode(b).mean, x, to_numpy=False), config)

    def eval_data(self, run, source: str, limit: int | None, seed: int):
        sentences = read_texts(source, run.data_config, default_split="test")
        if limit is not None:
            sentences = sentences[:limit]
        if len(sentences) < 2:
            raise VaekitError(f"{source} has {len(sentences)} sentence(s); evaluation needs at least 2")
        x = run.prepare(sentences).cpu()  # (N, max_len) ids, words + <eos>, cut at max_len
        tokens, unk = int((x != 0).sum()), int((x == Tokenizer.UNK_ID).sum())
        if unk > 0.5 * tokens:
            warnings.warn(f"{unk / tokens:.0%} of the words of {source} are unknown to this run's vocabulary; "
                          "is it the kind of text the model was trained on?", stacklevel=4)
        return x, None, {"tokens": tokens, "unk": unk,
                         "settings": {"max_len": run.model.config.max_len, "tokens": tokens}}

    def eval_metrics(self, run, x, bounds: dict, extra: dict) -> dict:
        tokens = extra["tokens"]
        return {"ppl": math.exp(min(50.0, float(bounds["iw_nll"].sum()) / tokens)),
                "ppl_elbo": math.exp(min(50.0, float(bounds["neg_elbo"].sum()) / tokens)),
                "unk_share": extra["unk"] / tokens}

    def vary_defaults(self) -> dict:
        """vary's defaults: vaekit.variations (the sentence edited, 30 % of its words rewritten)."""
        from ..editing import EditConfig  # its defaults are vaekit.variations'
        from ..variations import DEFAULT_SPREAD

        return {"spread": DEFAULT_SPREAD, "config": EditConfig()}

    def vary(self, run, sentence, z, config=None, **options) -> list[str]:
        """With an EditConfig, the sentence edited under each code (vaekit.editing); with a DecodeConfig
        (or a model that cannot read a sentence word by word, as text-seed), each code decoded. A sentence
        of no words is always decoded. Words past the run's max_len are kept as typed."""
        from ..editing import EditConfig, edit_variations

        z = run.codes(z)  # (n, D) on the run's device
        words = run.tokenizer.surface_words(sentence) if isinstance(sentence, str) else []
        if not isinstance(config, EditConfig):
            return self.decode(run, z, config, **options)  # None: as sample decodes
        if not words or not hasattr(run.model, "step"):
            return self.decode(run, z)  # as sample decodes
        read = run.model.config.max_len - 1  # the words the model reads (then <eos>)
        ids = run.tokenizer.encode(sentence, add_eos=False)[:read]
        edited = edit_variations(run.model, words[:read], ids, z, config, run.tokenizer.index_word)
        return [" ".join([e, *words[read:]]) for e in edited]

    def example_lengths(self, x: torch.Tensor) -> torch.Tensor:
        """A recurrent decoder runs every sentence of a pass to the longest one's length, and k copies
        of it at that; in PTB's test order, sorting by length cut the decoder's steps by about half."""
        return (x != 0).sum(1)

    def decode_cost(self, model, batch: torch.Tensor) -> float:
        """Real tokens x vocabulary: padding is never projected."""
        return max(1.0, float((batch != 0).sum()) / len(batch)) * model.config.vocab_size

    def show_examples(self, run, data: Inputs, order, scores, out: Path, title: str | None = None) -> list[str]:
        """most_anomalous.txt: score, index and sentence, most anomalous first."""
        from ..runs import atomic_write

        lines = [f"{scores[i]:.2f}\t{i}\t{data.texts[i]}" for i in order]
        atomic_write(out / "most_anomalous.txt", ("score\tindex\tsentence\n" + "\n".join(lines) + "\n").encode())
        return lines

    anomaly_files = ("most_anomalous.txt",)

    def codec(self):
        """Bits-back coding (vaekit.compression)."""
        from ..compression import TEXT_CODEC

        return TEXT_CODEC

    def shown(self, run, x) -> list[str]:
        return list(x)

    def page_items(self, outputs) -> list[dict]:
        return [{"text": str(s)} for s in outputs]

    def write_samples(self, run, samples: list[str], dest: Destination) -> None:
        dest.lines(samples)

    def write_reconstructions(self, run, inputs: Inputs, outputs: list[str], dest: Destination) -> None:
        dest.lines([f"{a}\t{b}" for a, b in zip(inputs.texts, outputs)], header="input\treconstruction")

    def write_interpolation(self, run, outputs: list[str], dest: Destination, what: str) -> None:
        dest.lines(outputs)

    def export_manifest(self, model) -> dict:
        return {"special_tokens": {"pad": Tokenizer.PAD_ID, "unk": Tokenizer.UNK_ID, "bos": Tokenizer.BOS_ID,
                                   "eos": Tokenizer.EOS_ID}, "max_len": model.config.max_len}

    def estimator_tags(self, tags) -> None:
        tags.input_tags.string = True

    def estimator_inputs(self, estimator, X, reset: bool) -> list[str]:
        sentences = [X] if isinstance(X, str) else list(X)
        if not sentences or not all(isinstance(s, str) for s in sentences):
            raise VaekitError("kind='text' takes a non-empty list of sentences (str)")
        return sentences

    def estimator_training_data(self, estimator, train, val, data_config) -> TrainingData:
        return training_arrays(train, val, data_config)


TEXT = TextModality()

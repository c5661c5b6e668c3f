"""A word-level tokenizer: the Keras `Tokenizer`'s behaviour, plus special tokens, preprocessing
options and an exact JSON save/restore.

Ids: 0 = <pad> (padding, as in the design document), 1 = <unk>, 2 = <bos>, 3 = <eos>, then the
fitted words from the most to the least frequent (ties: first appearance wins, so a fit is
deterministic). `max_vocab` caps the fitted words; the four specials are counted separately.

The preprocessing pipeline (`tokenize`), in order:
1. lower-case (`lower`);
2. split on whitespace;
3. `strip_punctuation`: characters other than letters, digits and apostrophes become spaces
   ("third-quarter" -> "third", "quarter"), like Keras' default filters;
   `split_punctuation`: punctuation marks become words of their own ("end." -> "end", ".");
4. `remove_stopwords`: drop scikit-learn's ENGLISH_STOP_WORDS (bundled, nothing to download);
5. `stem`: Porter stemming with nltk's PorterStemmer (`pip install nltk`).
The literal token "<unk>" (PTB marks rare words with it) skips steps 3-5 and maps to <unk>.

Pre-tokenised corpora such as PTB want both punctuation options off (PTB's words include "mr."
and "u.s."); raw text (your own sentences, the default corpus) reads better with
`split_punctuation=True`, so that "end." and "end" are one word.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .errors import VaekitError
from .runs import read_json, write_json

FORMAT = "vaekit-tokenizer"
FORMAT_VERSION = 1
MAX_WORDS = 2_000_000  # far beyond any real vocabulary; refuse hostile files before building dicts

_STRIP = re.compile(r"[^\w\s']|_")  # \w minus "_": letters and digits
_SPLIT = re.compile(r"\w+(?:'\w+)*|\S")  # words (with inner apostrophes: "don't") or single marks


@dataclass(frozen=True)
class TokenizerConfig:
    max_vocab: int | None = 20000  # most frequent words kept (specials not counted); None: all
    min_count: int = 1  # words seen fewer times in fit() map to <unk>
    lower: bool = True
    strip_punctuation: bool = False  # drop characters that are not letters/digits/apostrophes/spaces
    split_punctuation: bool = False  # make each punctuation mark a word of its own
    remove_stopwords: bool = False  # scikit-learn's ENGLISH_STOP_WORDS
    stem: bool = False  # Porter stemming (needs nltk)

    def __post_init__(self):
        for f in fields(self):
            if f.type == "bool" and not isinstance(getattr(self, f.name), bool):
                raise VaekitError(f"tokenizer {f.name} must be true or false, got {getattr(self, f.name)!r}")
        if self.max_vocab is not None and not (_is_int(self.max_vocab) and 1 <= self.max_vocab <= MAX_WORDS):
            raise VaekitError(f"max_vocab must be a whole number from 1 to {MAX_WORDS} (or None for no cap), "
                              f"got {self.max_vocab!r}")
        if not (_is_int(self.min_count) and self.min_count >= 1):
            raise VaekitError(f"min_count must be a whole number >= 1, got {self.min_count!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Tokenizer:
    """Words <-> ids. `fit` builds the vocabulary; `encode`/`decode` map one sentence."""

    PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
    SPECIALS = (PAD, UNK, BOS, EOS)
    PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

    # A frozen dataclass is immutable, so sharing the default instance is safe.
    def __init__(self, config: TokenizerConfig = TokenizerConfig()):
        if not isinstance(config, TokenizerConfig):
            raise VaekitError(f"config must be a TokenizerConfig, got {type(config).__name__}")
        self.config = config
        self.index_word: list[str] = list(self.SPECIALS)
        self.word_index: dict[str, int] = {w: i for i, w in enumerate(self.SPECIALS)}
        self.fitted = False
        self._stop_words = _stop_words() if config.remove_stopwords else frozenset()
        self._stem = _porter_stemmer() if config.stem else None

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included: the embedding and softmax size."""
        return len(self.index_word)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, fitted={self.fitted}, config={self.config})"

    # --- text -> words ---------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """The words of text after the preprocessing pipeline (see the module docstring)."""
        if not isinstance(text, str):
            raise VaekitError(f"expected a sentence (str), got {type(text).__name__}")
        cfg = self.config
        words = (text.lower() if cfg.lower else text).split()
        if cfg.strip_punctuation:
            words = [piece for w in words for piece in ([w] if w == self.UNK else _STRIP.sub(" ", w).split())]
        if cfg.split_punctuation:
            words = [piece for w in words for piece in ([w] if w == self.UNK else _SPLIT.findall(w))]
        if self._stop_words:
            words = [w for w in words if w.lower() not in self._stop_words]
        if self._stem is not None:
            words = [w if w == self.UNK else self._stem(w) for w in words]
        return words

    def surface_words(self, text: str) -> list[str]:
        """tokenize(text)'s words as typed (case kept) where the pipeline only lower-cases, one for one;
        otherwise (punctuation, stop words, stems) tokenize(text) itself."""
        cfg = self.config
        if cfg.strip_punctuation or cfg.split_punctuation or cfg.remove_stopwords or cfg.stem:
            return self.tokenize(text)
        return text.split()

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Build the vocabulary from texts (replacing any earlier one); returns self."""
        if isinstance(texts, (str, bytes)):
            raise VaekitError("fit takes a list of sentences, not a single string")
        counts: Counter[str] = Counter()  # insertion order = first appearance, the tie-breaker
        for text in texts:
            counts.update(self.tokenize(text))
        for special in self.SPECIALS:
            counts.pop(special, None)
        ranked = [w for w, c in sorted(counts.items(), key=lambda item: -item[1])  # stable sort
                  if c >= self.config.min_count]
        if not ranked:
            raise VaekitError("no words to build a vocabulary from (the texts are empty"
                              + (f", or no word occurs {self.config.min_count} or more times" if counts else "") + ")")
        self._set_words(ranked[:self.config.max_vocab])
        return self

    def _set_words(self, words: Sequence[str]) -> None:
        self.index_word = [*self.SPECIALS, *words]
        self.word_index = {w: i for i, w in enumerate(self.index_word)}
        self.fitted = True

    # --- words <-> ids ---------------------------------------------------------------------------

    def _word_id(self, word: str) -> int:
        i = self.word_index.get(word, self.UNK_ID)
        return self.UNK_ID if i in (self.PAD_ID, self.BOS_ID, self.EOS_ID) else i  # "<eos>" typed in text

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = True) -> list[int]:
        """Ids of text's words: unknown words -> <unk>; <bos> first and <eos> last when asked."""
        self._check_fitted()
        ids = [self._word_id(w) for w in self.tokenize(text)]
        return [self.BOS_ID] * add_bos + ids + [self.EOS_ID] * add_eos

    def texts_to_sequences(self, texts: Iterable[str], add_bos: bool = False,
                           add_eos: bool = True) -> list[list[int]]:
        """`encode` over a list of sentences (the Keras name; unlike Keras, <eos> is appended by default)."""
        if isinstance(texts, (str, bytes)):
            raise VaekitError("texts_to_sequences takes a list of sentences, not a single string")
        return [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """The words of ids joined by spaces, up to the first <eos>.

        <unk> is always shown; <pad> and <bos> (and the <eos> itself) only when skip_special is false.
        Accepts lists, numpy arrays and 1-d tensors.
        """
        self._check_fitted()
        words = []
        for raw in ids:
            i = int(raw)
            if not 0 <= i < self.vocab_size:
                raise VaekitError(f"id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
            if i == self.EOS_ID:
                words += [] if skip_special else [self.EOS]
                break
            if not (skip_special and i in (self.PAD_ID, self.BOS_ID)):
                words.append(self.index_word[i])
        return " ".join(words)

    def unknown_words(self, text: str) -> list[str]:
        """text's words that map to <unk> (each once, in order of appearance), for reporting."""
        self._check_fitted()
        words = [w for w in self.tokenize(text) if w != self.UNK and self._word_id(w) == self.UNK_ID]
        return list(dict.fromkeys(words))

    def pad(self, sequences: Sequence[Sequence[int]], max_len: int, value: int = PAD_ID) -> np.ndarray:
        """(N, max_len) int64: each sequence cut after max_len ids (post-truncation: a cut
        sentence loses its <eos>) and filled with value after its end (post-padding)."""
        if not (_is_int(max_len) and max_len >= 1):
            raise VaekitError(f"max_len must be a whole number >= 1, got {max_len!r}")
        out = np.full((len(sequences), max_len), value, dtype=np.int64)
        for row, seq in zip(out, sequences):
            seq = list(seq)[:max_len]
            row[:len(seq)] = seq
        return out

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise VaekitError("the tokenizer has no vocabulary yet: call fit(texts) or Tokenizer.load(path)")

    # --- JSON ------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """Everything needed to rebuild this tokenizer exactly (the specials are implied)."""
        self._check_fitted()
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(self.config),
                "words": self.index_word[len(self.SPECIALS):]}

    @classmethod
    def from_json(cls, data: dict) -> Tokenizer:
        """The tokenizer `to_json` described; anything malformed or absurd is a VaekitError."""
        if not isinstance(data, dict):
            raise VaekitError(f"a tokenizer must be a JSON object, got {type(data).__name__}")
        _check_keys(data, {"format", "format_version", "config", "words"}, "tokenizer")
        if data["format"] != FORMAT or data["format_version"] != FORMAT_VERSION:
            raise VaekitError(f"not a {FORMAT} version {FORMAT_VERSION} file (format {data['format']!r}, "
                              f"version {data['format_version']!r})")
        config = data["config"]
        if not isinstance(config, dict):
            raise VaekitError("tokenizer config must be a JSON object")
        _check_keys(config, {f.name for f in fields(TokenizerConfig)}, "tokenizer config", required=False)
        tokenizer = cls(TokenizerConfig(**config))
        tokenizer._set_words(_check_words(data["words"], tokenizer.config.max_vocab))
        return tokenizer

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON (atomically: a reader never sees half a file)."""
        try:
            write_json(path, self.to_json())
        except OSError as e:
            raise VaekitError(f"cannot write the tokenizer to {path}: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        try:
            data = read_json(path)  # refuses missing, oversized and non-JSON files
        except RecursionError:  # "[[[[..." nested beyond the parser's limit
            raise VaekitError(f"{path} is not a tokenizer file (JSON nested too deeply)") from None
        try:
            return cls.from_json(data)
        except VaekitError as e:
            raise VaekitError(f"{path}: {e}") from None


def _check_keys(obj: dict, allowed: set[str], what: str, required: bool = True) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        # repr() for keys that are not printable: a hostile key must not break the one-line message
        raise VaekitError(f"{what} has unknown keys: {', '.join(k if k.isprintable() else repr(k) for k in unknown)}")
    missing = sorted(allowed - set(obj)) if required else []
    if missing:
        raise VaekitError(f"{what} lacks keys: {', '.join(missing)}")


def _check_words(words, max_vocab: int | None) -> list[str]:
    if not isinstance(words, list):
        raise VaekitError("tokenizer words must be a JSON list of strings")
    cap = MAX_WORDS if max_vocab is None else max_vocab
    if not 1 <= len(words) <= cap:
        raise VaekitError(f"tokenizer holds {len(words)} words; expected 1 to {cap}")
    for w in words:
        if not isinstance(w, str) or not w or len(w.split()) != 1 or w != w.strip():
            raise VaekitError(f"tokenizer word {w!r} is not a single word")
        if w in Tokenizer.SPECIALS:
            raise VaekitError(f"tokenizer words must not repeat the special token {w}")
    if len(set(words)) != len(words):
        duplicate = next(w for w, c in Counter(words).items() if c > 1)
        raise VaekitError(f"tokenizer word {duplicate!r} appears more than once")
    return words


def length_percentile(sequences: Sequence[Sequence[int]], q: float = 95) -> int:
    """The q-th percentile of the sequences' lengths (an observed length, never below it): the
    default max length. Pass encoded sequences, which already count <bos>/<eos> as the model will."""
    if not (isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q <= 100 and math.isfinite(q)):
        raise VaekitError(f"percentile must be in (0, 100], got {q!r}")
    lengths = [len(s) for s in sequences]
    if not lengths:
        raise VaekitError("no sequences to measure")
    return max(1, int(np.percentile(lengths, q, method="higher")))


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # heavy import, only when asked

    return frozenset(ENGLISH_STOP_WORDS)


def _porter_stemmer() -> Callable[[str], str]:
    try:
        from nltk.stem import PorterStemmer
    except ImportError:
        raise VaekitError("stemming needs nltk: pip install nltk (or turn stemming off)") from None
    stemmer = PorterStemmer()
    return lambda word: stemmer.stem(word, to_lowercase=False)  # case is the `lower` option's business

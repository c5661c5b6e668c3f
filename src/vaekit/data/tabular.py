"""Tables of numeric features: CSV files, .npy/.npz arrays and scikit-learn's bundled data sets.

`read_table` gives a `Table` (the cells as read, header names when there are any); `feature_matrix`
picks the feature columns and turns them into float64, refusing what a model cannot learn from with
a message naming the line and column: words in numeric columns and infinity.

A missing cell (empty, or one of pandas' markers such as NA, NaN, null, and "?") is read as NaN, in numeric
and categorical columns alike. vaekit never fills one in before training: the likelihood leaves it out (it is
marginalised, as the HI-VAE and MIWAE do: Nazabal et al. 2020, Mattei & Frellsen 2019), and `vaekit impute`
fills it afterwards from the trained model.
"""
from __future__ import annotations

import csv
import re
import shlex
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VaekitError

# scikit-learn's bundled tables (no download): name -> loader name in sklearn.datasets
NAMED_TABLES = {"wine": "load_wine", "breast-cancer": "load_breast_cancer", "iris": "load_iris"}
_X_KEYS = ("x", "X", "data", "features", "arr_0")
_Y_KEYS = ("y", "labels", "target")
MAX_FIELD = 1 << 20  # characters in one CSV cell
# Cells read as missing values: pandas' default na_values, and "?" (the UCI repository's marker).
MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "?"})


@dataclass
class Table:
    """A table as read. cells: (N, W), str for CSV files, float64 for arrays and named sets.
    names: the header's column names, or None when the source has none (then columns are named by
    their 0-based index). y/classes: labels that come with the source (npz 'y', named data sets)."""

    cells: np.ndarray
    names: list[str] | None
    source: str
    first_line: int = 1  # the file line of row 0, for messages
    y: np.ndarray | None = None
    classes: list[str] | None = None

    @property
    def column_names(self) -> list[str]:
        return self.names if self.names is not None else [str(i) for i in range(self.cells.shape[1])]


def read_table(source: str, delimiter: str = ",") -> Table:
    """A named data set (wine, breast-cancer, iris), a CSV/TSV file, or a .npy/.npz array."""
    if source in NAMED_TABLES:
        return load_named_table(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise VaekitError(f"no such file: {source} (bundled tables: {', '.join(NAMED_TABLES)})")
    if path.suffix.lower() in (".npy", ".npz"):
        return read_array_table(path)
    return read_csv_table(path, delimiter)


def load_named_table(name: str) -> Table:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, NAMED_TABLES[name])()
    return Table(np.asarray(bunch.data, np.float64), [str(n) for n in bunch.feature_names], name,
                 y=np.asarray(bunch.target, np.int64), classes=[str(c) for c in bunch.target_names])


def read_array_table(path: Path) -> Table:
    """(N, F) numbers from a .npy, or from a .npz under x/X/data (+ labels under y/labels)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                x_key = next((k for k in _X_KEYS if k in loaded.files), None)
                if x_key is None:
                    raise VaekitError(f"{path}: no feature array (looked for keys {', '.join(_X_KEYS)}; "
                                      f"the file has {', '.join(loaded.files) or 'no arrays'})")
                y_key = next((k for k in _Y_KEYS if k in loaded.files), None)
                x, y = loaded[x_key], None if y_key is None else loaded[y_key]
        else:
            x, y = loaded, None
    # TokenError and SyntaxError: numpy parses the header as Python literals and lets these through.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, tokenize.TokenError, SyntaxError) as e:
        raise VaekitError(f"{path}: cannot read array file: {e}") from None
    if x.ndim != 2:
        raise VaekitError(f"{path}: features must be a 2-D array (rows, columns), got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise VaekitError(f"{path}: features must be numbers, not dtype {x.dtype}")
    if len(x) == 0 or x.shape[1] == 0:
        raise VaekitError(f"{path}: the array is empty (shape {x.shape})")
    if y is not None and (y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "biu"):
        raise VaekitError(f"{path}: labels must be {len(x)} integers, got shape {y.shape} of {y.dtype}")
    return Table(x.astype(np.float64), None, str(path), y=None if y is None else y.astype(np.int64))


def read_csv_table(path: Path, delimiter: str = ",") -> Table:
    """The cells of a CSV file as strings. The first row is a header when any of its cells is not a
    number; every row must have as many cells as the first."""
    if len(delimiter) != 1:
        raise VaekitError(f"the delimiter must be one character, got {delimiter!r}")
    csv.field_size_limit(MAX_FIELD)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(n, row) for n, row in enumerate(csv.reader(f, delimiter=delimiter), 1) if row]
    except UnicodeDecodeError as e:
        raise VaekitError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); is it a CSV file?") from None
    except csv.Error as e:
        raise VaekitError(f"{path}: not a readable CSV file ({e})") from None
    except OSError as e:
        raise VaekitError(f"{path}: cannot read ({e.strerror or e})") from None
    if not rows:
        raise VaekitError(f"{path} is empty")
    width = len(rows[0][1])
    for number, row in rows:
        if len(row) != width:
            raise VaekitError(f"{path} line {number} has {len(row)} cells but line {rows[0][0]} has {width}; "
                              f"every row needs the same columns (is --delimiter {delimiter!r} right?)")
    header = [c.strip() for c in rows[0][1]]
    # A header has a cell that is not a number. A first row of data can too (a category: "setosa"), but its
    # words come again further down their columns, where a header's names do not.
    words = [j for j, c in enumerate(header) if not _is_number(c)]
    has_header = bool(words) and not (len(rows) > 2 and all(
        any(row[j].strip() == header[j] for _, row in rows[1:]) for j in words))
    body = rows[1:] if has_header else rows
    if not body:
        raise VaekitError(f"{path} has a header but no rows")
    cells = np.array([row for _, row in body], dtype=str)  # (N, W)
    return Table(cells, header if has_header else None, str(path), first_line=body[0][0])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def column_index(table: Table, column: str) -> int:
    """A column by header name or 0-based index."""
    names = table.column_names
    if column in names:
        return names.index(column)
    if column.isdigit() and int(column) < len(names):
        return int(column)
    parts = [p.strip() for p in column.split(",")]
    hint = (f" (separate the names with spaces: {' '.join(shlex.quote(p) for p in parts)})"
            if len(parts) > 1 and all(p in names or (p.isdigit() and int(p) < len(names)) for p in parts) else "")
    raise VaekitError(f"{table.source} has no column {column!r}{hint}; its columns are: {_shorten(names)}")


def _shorten(names: list[str], n: int = 12) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def id_like_columns(x: np.ndarray, names: list[str], min_rows: int = 10) -> list[str]:
    """Names of the columns of x (N, F) that look like row IDs: whole numbers, all different, in increasing
    or decreasing order (a row number, a database key). Learnt as a feature, such a column tells rows
    apart by position, and in a file sorted by class it gives the label away."""
    if len(x) < min_rows:  # a few rows in order prove nothing
        return []
    found = []
    for j, name in enumerate(names):
        column = x[:, j]
        step = np.diff(column)
        if np.array_equal(column, np.round(column)) and ((step > 0).all() or (step < 0).all()):
            found.append(name)
    return found


MAX_CATEGORIES = 1000  # a column of more distinct words is an ID or free text, not a category


def feature_matrix(table: Table, columns: list[str] | None = None, exclude: str | None = None,
                   categories: dict | None = None, training: bool = True) -> tuple[np.ndarray, list[str]]:
    """(N, F) float64 features and their names: `columns` (names or indices), else every column
    but `exclude` (the label). A missing cell is NaN; words and infinity are refused with their place.
    categories: categorical column names -> their known categories; those columns hold each cell's code
    (its place in the categories, K for one not among them, NaN for a missing cell). training: columns of words
    are named all at once with the options that train (a run reading new rows names the first bad cell instead)."""
    categories = categories or {}
    names = table.column_names
    if columns:
        index = [column_index(table, c) for c in columns]
        if exclude is not None and column_index(table, exclude) in index:
            raise VaekitError(f"column {exclude!r} is the label (--label) and a feature (--columns); "
                              "a column can be one or the other")
    else:
        skip = None if exclude is None else column_index(table, exclude)
        index = [i for i in range(len(names)) if i != skip]
    if not index:
        raise VaekitError(f"{table.source} has no feature columns left (only the label column)")
    if training:
        _refuse_word_columns(table, [i for i in index if names[i] not in categories])
    x = np.empty((len(table.cells), len(index)), np.float64)
    for j, i in enumerate(index):
        known = categories.get(names[i])
        x[:, j] = _numeric_column(table, i) if known is None else _category_codes(table, i, known)
    empty = np.isnan(x).all(1)
    if empty.any():
        bad = int(np.argmax(empty))
        raise VaekitError(f"{table.source} line {table.first_line + bad} has no value in any feature column (every "
                          "cell missing): drop that row")
    return x, [names[i] for i in index]


def _category_cells(table: Table, i: int) -> list[str | None]:
    """Column i's cells, stripped; None for a missing one (MISSING, or None/NaN in a table in memory)."""
    return [None if v is None or _is_missing(v) or str(v).strip() in MISSING else str(v).strip()
            for v in table.cells[:, i].tolist()]


def table_categories(table: Table, column: str) -> tuple[str, ...]:
    """The sorted distinct cells of a categorical column (numbers or words), missing cells left out."""
    i = column_index(table, column)
    found = tuple(sorted({c for c in _category_cells(table, i) if c is not None}))
    if not found:
        raise VaekitError(f"column {table.column_names[i]!r} has no values: every cell is missing")
    if len(found) > MAX_CATEGORIES:
        raise VaekitError(f"column {table.column_names[i]!r} has {len(found)} different values, more than "
                          f"{MAX_CATEGORIES} categories: an ID or free text, not a category; leave it out with "
                          "--columns")
    return found


def _category_codes(table: Table, i: int, known: tuple[str, ...]) -> np.ndarray:
    """(N,) codes of column i's cells among `known`; len(known) for a category not among them, NaN for a
    missing cell."""
    lookup = {c: k for k, c in enumerate(known)}
    return np.array([np.nan if c is None else lookup.get(c, len(known)) for c in _category_cells(table, i)],
                    np.float64)


# A calendar date (2024-03-01, 2024/03/01, 01/03/2024, 1.3.2024), with a time of day or not.
_DATE = re.compile(r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"
                   r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?Z?)?$")


WORD_NOTES = {"date": "dates: write them as numbers, such as the year or the days since a fixed day, to use them",
              "id": "all different: a row ID?"}


def word_kind(cells) -> str:
    """What a column of words (its cells as strings, "" for a missing one) most likely is: "date", "id" (all
    different, at least 10), "categories" (at most 50 different: --categorical takes it) or "words"."""
    filled = [c for c in cells if c not in MISSING]
    if filled and all(_DATE.match(c) for c in filled):
        return "date"
    distinct = len(set(filled))
    if distinct == len(filled) >= 10:
        return "id"
    return "categories" if distinct <= 50 else "words"


def _refuse_word_columns(table: Table, index: list[int]) -> None:
    """Name every column of words among `index` at once (not the first only, one rerun each), with the
    --columns that trains on the numeric ones; a column of all-different words is offered as --id-column,
    one of few different words as --categorical."""
    names, words = table.column_names, []
    if table.cells.shape[1] == 1:  # one column: the per-cell message says it (and spots a wrong delimiter)
        return
    for i in index:
        column = np.char.strip(table.cells[:, i].astype(str))
        is_word = np.array([c not in MISSING and not _is_number(c) for c in column], bool)
        # a few odd cells in a numeric column: the per-cell message
        if is_word.sum() > sum(c not in MISSING for c in column) / 2:
            words.append((i, column, int(np.argmax(is_word))))
    if not words:
        return
    numeric = [names[i] for i in index if i not in {w[0] for w in words}]
    kinds = {names[i]: word_kind(column) for i, column, _ in words}
    ids = [n for n, k in kinds.items() if k == "id"]
    few = [n for n, k in kinds.items() if k == "categories"]
    listed = []
    for i, column, row in words[:8]:
        note = WORD_NOTES.get(kinds[names[i]], f"{len(set(column))} different")
        listed.append(f"{names[i]!r} ({column[row][:30]!r} on line {table.first_line + row}; {note})")
    more = f" and {len(words) - 8} more" if len(words) > 8 else ""
    fix = ""
    if numeric:
        fix = (f"; to train on the {len(numeric)} numeric column(s), pass "
               + (f"--id-column {ids[0]} " if ids else "") + "--columns " + " ".join(shlex.quote(n) for n in numeric))
        if ids:
            fix += " (the IDs are then written beside each score and code)"
    if few:
        fix += ("; or keep " + ", ".join(map(repr, few)) + " as categories with --categorical "
                + " ".join(shlex.quote(n) for n in few))
    raise VaekitError(f"{table.source}: {len(words)} column(s) hold words, not numbers: {', '.join(listed)}{more}; "
                      f"words are features only as categories (--categorical){fix}")


def _numeric_column(table: Table, i: int) -> np.ndarray:
    """(N,) float64 values of column i, NaN for a missing cell; a word or infinity is refused with its place."""
    column, name = table.cells[:, i], table.column_names[i]
    if column.dtype.kind == "f":
        values = column
    else:
        try:
            values = column.astype(np.float64)  # every cell a number (or "nan"): the fast path
        except (TypeError, ValueError):
            values = _numbers_with_gaps(table, i)
    infinite = np.isinf(values)
    if infinite.any():
        bad = int(np.argmax(infinite))
        raise VaekitError(f"{table.source} line {table.first_line + bad}, column {name!r} is {values[bad]} "
                          "(infinity); vaekit refuses infinite values: fix or drop those rows (a missing value "
                          "can be an empty cell)")
    return values


def _numbers_with_gaps(table: Table, i: int) -> np.ndarray:
    """(N,) float64 values of column i whose cells include missing ones (NaN) or a word (refused, named)."""
    column, name = table.cells[:, i], table.column_names[i]
    cells = [None if v is None or _is_missing(v) or str(v).strip() in MISSING else v for v in column.tolist()]
    try:
        return np.array([np.nan if v is None else float(v) for v in cells], np.float64)
    except (TypeError, ValueError):
        bad = next(r for r, c in enumerate(cells) if c is not None and not _is_number(str(c)))
    cell = str(column[bad]).strip()
    # One column whose name and cells hold ; or tabs: the file is split on another character.
    other = next((d for d in (";", "\t", "|") if d in name and d in cell), None)
    hint = (f" (every row is one cell: is the file separated by {other!r}? Then pass --delimiter {other!r})"
            if other and table.cells.shape[1] == 1 else "")
    raise VaekitError(f"{table.source} line {table.first_line + bad}, column {name!r} holds {cell[:40]!r}, not a "
                      f"number{hint}; fix or drop those rows, or leave the column out with --columns (or name it in "
                      "--categorical if it holds categories)")


def label_column(table: Table, label: str | None) -> tuple[np.ndarray | None, list[str] | None]:
    """(N,) int64 labels and class names: the `label` column (numbers or words), else the
    source's own labels, else None."""
    if label is None:
        return table.y, table.classes
    column = table.cells[:, column_index(table, label)]
    values = [str(v).strip() for v in column]
    if all(_is_number(v) for v in values) and all(float(v).is_integer() for v in values):
        classes = sorted({int(float(v)) for v in values})
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[int(float(v))] for v in values], np.int64), [str(c) for c in classes]
    classes = sorted(set(values))
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in values], np.int64), classes


def select_for_run(table: Table, names: list[str], categories: dict | None = None) -> np.ndarray:
    """The features a run was trained on, out of a new table (column_positions says which columns).
    categories: the run's categorical columns -> their categories (feature_matrix)."""
    positions = column_positions(table, names)
    if table.names is not None:
        return feature_matrix(table, names, categories=categories, training=False)[0]
    # No header: the columns are named by position, and so are the run's categorical ones
    by_position = {str(i): categories[n] for i, n in zip(positions, names) if n in (categories or {})}
    return feature_matrix(table, [str(i) for i in positions], categories=by_position, training=False)[0]


def column_positions(table: Table, names: list[str]) -> list[int]:
    """Where a run's feature columns `names` are in a new table: by header name when the table has a header,
    else by position (a table of exactly those columns, or of the training file's width)."""
    if table.names is not None:
        missing = [n for n in names if n not in table.names]
        if missing:
            raise VaekitError(f"{table.source} lacks column(s) the run was trained on: {_shorten(missing)}")
        return [table.names.index(n) for n in names]
    width = table.cells.shape[1]
    if width == len(names):
        return list(range(width))
    if all(n.isdigit() for n in names) and max(int(n) for n in names) < width:
        return [int(n) for n in names]
    raise VaekitError(f"{table.source} has {width} columns but the run takes {len(names)} features "
                      f"({_shorten(names)})")


def memory_table(X, names: list[str] | None = None) -> Table:
    """A table in memory, a pandas DataFrame or a 2-D array, as a Table (source "X", rows counted from 0) that
    feature_matrix reads as it reads a CSV file: the cells as Python objects, a missing one (None, NaN, pandas'
    NA) as None. names: the columns' names (default: their 0-based indices)."""
    if hasattr(X, "isna") and hasattr(X, "to_numpy"):  # a DataFrame: its own idea of a missing cell
        cells = X.to_numpy(dtype=object)
        cells[X.isna().to_numpy()] = None
    else:
        try:
            cells = np.array(X, dtype=object)
        except ValueError as e:
            raise VaekitError(f"X is not a table of rows and columns ({e})") from None
        if cells.ndim == 2:
            cells[np.vectorize(_is_missing, otypes=[bool])(cells)] = None
    if cells.ndim != 2 or 0 in cells.shape:
        raise VaekitError(f"X must be a 2-D table (rows, columns), got shape {cells.shape}")
    return Table(cells, names, "X", first_line=0)


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and bool(np.isnan(v)))


def word_columns(table: Table, skip: set[str] = frozenset()) -> list[tuple[str, str, int, str]]:
    """(name, the first word, its row, word_kind) of each column of a memory_table but `skip` that holds a word:
    a string that is not a number (a missing cell is none; other objects are left to the readers)."""
    found = []
    for i, name in enumerate(table.column_names):
        if name in skip:
            continue
        is_word = [isinstance(v, str) and v.strip() not in MISSING and not _is_number(v) for v in table.cells[:, i]]
        if any(is_word):
            row = is_word.index(True)
            kind = word_kind(["" if v is None else str(v).strip() for v in table.cells[:, i]])  # "": missing
            found.append((name, str(table.cells[row, i]), row, kind))
    return found

"""Table readers: CSV header detection, labels, arrays, and every kind of bad cell named by place."""
import numpy as np
import pytest

from vaekit.data.tabular import feature_matrix, label_column, read_table, select_for_run
from vaekit.errors import VaekitError


def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_with_header_and_a_word_label(tmp_path):
    table = read_table(_csv(tmp_path, "a,b,kind\n1,2.5,cat\n3,4e1,dog\n5, 6 ,cat\n"))
    x, names = feature_matrix(table, exclude="kind")
    assert names == ["a", "b"] and x.tolist() == [[1, 2.5], [3, 40], [5, 6]]
    y, classes = label_column(table, "kind")
    assert y.tolist() == [0, 1, 0] and classes == ["cat", "dog"]
    x, names = feature_matrix(table, ["b"])
    assert names == ["b"] and x[:, 0].tolist() == [2.5, 40, 6]
    with pytest.raises(VaekitError, match="'kind' is the label .* and a feature"):
        feature_matrix(table, ["a", "kind"], exclude="kind")


def test_headerless_csv_names_columns_by_index(tmp_path):
    table = read_table(_csv(tmp_path, "1;2;0\n3;4;1\n", "t.tsv"), delimiter=";")
    assert table.names is None
    x, names = feature_matrix(table, exclude="2")
    assert names == ["0", "1"] and x.tolist() == [[1, 2], [3, 4]]
    assert label_column(table, "2")[0].tolist() == [0, 1]


def test_a_headerless_csv_whose_first_row_holds_a_category_is_all_data(tmp_path):
    """iris without its header: the first row's "setosa" is not a number, which alone made it a header (one row
    lost, the columns named after its cells). Its words come again below, where a header's names do not."""
    table = read_table(_csv(tmp_path, "5.1,3.5,setosa\n4.9,3.0,setosa\n7.0,3.2,versicolor\n"))
    assert table.names is None and len(table.cells) == 3
    table = read_table(_csv(tmp_path, "length,width,species\n5.1,3.5,setosa\n4.9,3.0,setosa\n"))
    assert table.names == ["length", "width", "species"] and len(table.cells) == 2


@pytest.mark.parametrize("text,match", [
    ("", "is empty"),
    ("a,b\n", "header but no rows"),
    ("a,b\n1,2\n3\n", "line 3 has 1 cells"),
    ("a,b\n1,2\n,NA\n", "line 3 has no value in any feature column"),
    ("a,b\n1,2\n3,abc\n", "line 3, column 'b' holds 'abc'"),
    ("a,b\n1,inf\n", "line 2, column 'b' is inf (infinity)"),
    ("a;b\n1.5;2\n", "Then pass --delimiter ';'"),
])
def test_bad_csv_cells_are_named(tmp_path, text, match):
    with pytest.raises(VaekitError, match=match.replace("(", r"\(").replace(")", r"\)")):
        table = read_table(_csv(tmp_path, text))
        feature_matrix(table)


def test_unknown_column_and_missing_file(tmp_path):
    table = read_table(_csv(tmp_path, "a,b\n1,2\n"))
    with pytest.raises(VaekitError, match="no column 'c'; its columns are: a, b"):
        feature_matrix(table, ["c"])
    with pytest.raises(VaekitError, match="no such file"):
        read_table(str(tmp_path / "nope.csv"))
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(VaekitError, match="not UTF-8"):
        read_table(str(tmp_path / "bin.csv"))


def test_arrays_and_named_tables(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(6.0).reshape(3, 2))
    assert feature_matrix(read_table(str(tmp_path / "x.npy")))[0].shape == (3, 2)
    np.savez(tmp_path / "xy.npz", x=np.ones((4, 3)), y=np.array([0, 1, 0, 1]))
    table = read_table(str(tmp_path / "xy.npz"))
    assert label_column(table, None)[0].tolist() == [0, 1, 0, 1]
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(VaekitError, match="2-D"):
        read_table(str(tmp_path / "flat.npy"))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(VaekitError, match="empty"):
        read_table(str(tmp_path / "empty.npy"))
    wine = read_table("wine")
    assert wine.cells.shape == (178, 13) and wine.classes == ["class_0", "class_1", "class_2"]


def test_new_data_is_matched_to_the_run_columns(tmp_path):
    table = read_table(_csv(tmp_path, "b,extra,a\n2,9,1\n4,9,3\n"))
    assert select_for_run(table, ["a", "b"]).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(VaekitError, match="lacks column"):
        select_for_run(table, ["a", "zzz"])
    headerless = read_table(_csv(tmp_path, "1,2,3\n", "h.csv"))
    with pytest.raises(VaekitError, match="has 3 columns but the run takes 2"):
        select_for_run(headerless, ["a", "b"])


def test_missing_cells_are_read_as_nan_in_numbers_and_categories(tmp_path):
    """Empty cells and pandas' markers (NA, NaN, null, ...) and UCI's "?" are missing values, not words: a
    column with a few of them is numeric, and a categorical column's missing cell is no category."""
    from vaekit.data.tabular import table_categories

    table = read_table(_csv(tmp_path, "a,b,c\n1,,red\nNA,2,?\n3,?,blue\nnan,4,\n5,null,red\n"))
    x, names = feature_matrix(table, ["a", "b"])
    assert np.isnan(x).tolist() == [[False, True], [True, False], [False, True], [True, False], [False, True]]
    assert x[0, 0] == 1 and x[3, 1] == 4
    assert table_categories(table, "c") == ("blue", "red")
    x, _ = feature_matrix(table, ["b", "c"], categories={"c": ("blue", "red")})
    assert np.isnan(x[:, 1]).tolist() == [False, True, False, True, False] and x[0, 1] == 1 and x[2, 1] == 0
    with pytest.raises(VaekitError, match="line 3 has no value in any feature column"):  # "NA" and "?"
        feature_matrix(table, ["a", "c"], categories={"c": ("blue", "red")})
    # a column that is mostly missing markers is still numeric, not "a column of words"
    table = read_table(_csv(tmp_path, "a,b\n" + "NA,1\n" * 5 + "2,3\n" + "1,NA\n"))
    assert np.isnan(feature_matrix(table)[0]).sum() == 6


def test_an_array_file_with_nan_has_missing_cells_and_infinity_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[1.0, np.nan], [2.0, 3.0]]))
    x, _ = feature_matrix(read_table(str(tmp_path / "x.npy")))
    assert np.isnan(x).sum() == 1 and x[1, 1] == 3
    np.save(tmp_path / "x.npy", np.array([[1.0, np.inf], [2.0, 3.0]]))
    with pytest.raises(VaekitError, match="infinity"):
        feature_matrix(read_table(str(tmp_path / "x.npy")))

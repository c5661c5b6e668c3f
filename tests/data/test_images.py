"""Image readers: IDX, .npy/.npz, folders of pictures, bundled digits, and load_images dispatch."""

import gzip
import pickle
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from vaekit.data.images import read_array, read_folder, read_idx
from vaekit.data.sources import load_digits, load_images
from vaekit.errors import VaekitError


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path, array: np.ndarray, gz: bool = False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def rng_images(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --- IDX --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_gzip_detected_by_content(tmp_path, gz):
    images = rng_images(5, 7, 3)
    path = write_idx(tmp_path / "no-telling-extension.bin", images, gz=gz)
    np.testing.assert_array_equal(read_idx(path), images)


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint8, st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)))
def test_idx_round_trip_any_shape(tmp_path_factory, array):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a.idx", array, gz=True)
    result = read_idx(path)
    assert result.shape == array.shape
    np.testing.assert_array_equal(result, array)


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\0\0\0\x01" + b"\x05")
    with pytest.raises(VaekitError, match="not an IDX file .* a .npy/.npz array"):  # and what images may be
        read_idx(path)
    path.write_bytes(b"")
    with pytest.raises(VaekitError, match="the file is empty"):
        read_idx(path)


def test_idx_unsupported_type_is_named(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\0\0\x0d\x01" + b"\0\0\0\x01" + b"\0\0\0\0")
    with pytest.raises(VaekitError, match="float"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_claims_more_than_file_holds(tmp_path, gz):
    data = idx_bytes(rng_images(10, 4, 4))[: 16 + 5 * 16]  # header says 10 images, 5 are there
    path = tmp_path / "short.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(VaekitError, match=r"short\.idx.*announces shape \(10, 4, 4\)"):
        read_idx(path)


def test_idx_hostile_header_does_not_allocate(tmp_path):
    # 2^32-1 cubed bytes announced: must be refused from the real payload size, instantly.
    path = tmp_path / "huge.idx"
    path.write_bytes(b"\0\0\x08\x03" + b"\xff\xff\xff\xff" * 3 + b"\0" * 10)
    with pytest.raises(VaekitError, match="announces"):
        read_idx(path)


def test_idx_trailing_bytes_refused(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(rng_images(2, 2, 2)) + b"extra")
    with pytest.raises(VaekitError, match="more"):
        read_idx(path)


def test_idx_truncated_gzip(tmp_path):
    compressed = gzip.compress(idx_bytes(rng_images(50, 8, 8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(VaekitError, match=r"cut\.gz.*truncated"):
        read_idx(path)


def test_idx_images_with_sibling_labels_via_load_images(tmp_path):
    images, labels = rng_images(6, 5, 5), np.arange(6, dtype=np.uint8) % 3
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, gz=True)
    result = load_images(str(path))
    assert result.x.shape == (6, 1, 5, 5)
    np.testing.assert_array_equal(result.x[:, 0], images)
    assert result.y.dtype == np.int64 and result.y.tolist() == labels.tolist()


def test_idx_labels_file_given_as_images_is_refused(tmp_path):
    path = write_idx(tmp_path / "labels.idx1", np.arange(4, dtype=np.uint8))
    with pytest.raises(VaekitError, match="labels"):
        load_images(str(path))


# --- .npy / .npz -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "to_nchw"), [
    ((4, 6, 5), lambda a: a[:, None]),
    ((4, 6, 5, 3), lambda a: a.transpose(0, 3, 1, 2)),
    ((4, 6, 5, 1), lambda a: a.transpose(0, 3, 1, 2)),
    ((4, 3, 6, 5), lambda a: a),
    ((4, 1, 6, 5), lambda a: a),
])
def test_npy_shapes_become_nchw(tmp_path, stored, to_nchw):
    array = rng_images(*stored)
    np.save(tmp_path / "a.npy", array)
    result = read_array(tmp_path / "a.npy")
    assert result.x.dtype == np.uint8 and result.x.flags.c_contiguous
    np.testing.assert_array_equal(result.x, to_nchw(array))
    assert result.y is None


def test_npy_float_unit_range_becomes_uint8(tmp_path):
    np.save(tmp_path / "f.npy", np.array([[[0.0, 0.5], [1.0, 0.2]]], dtype=np.float32))
    assert read_array(tmp_path / "f.npy").x.tolist() == [[[[0, 128], [255, 51]]]]


@pytest.mark.parametrize(("values", "message"), [
    (np.array([[[0.0, np.nan]]]), "NaN"),
    (np.array([[[0.0, np.inf]]]), "NaN or infinite"),
    (np.array([[[0.0, 2.0]]]), r"\[0, 1\]"),
    (np.array([[[0, 256]]]), "0..255"),
    (np.zeros((0, 4, 4)), "empty"),
    (np.zeros((4, 16)), "shape"),
    (np.zeros((2, 5, 6, 7)), "shape"),
])
def test_npy_bad_values_and_shapes_refused(tmp_path, values, message):
    np.save(tmp_path / "bad.npy", values)
    with pytest.raises(VaekitError, match=message):
        read_array(tmp_path / "bad.npy")


def test_npy_object_array_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[[1, "a"]]], dtype=object), allow_pickle=True)
    with pytest.raises(VaekitError, match=r"obj\.npy"):
        read_array(tmp_path / "obj.npy")


def test_pickle_disguised_as_npy_refused(tmp_path):
    (tmp_path / "evil.npy").write_bytes(pickle.dumps({"x": [1, 2, 3]}))
    with pytest.raises(VaekitError, match=r"evil\.npy"):
        read_array(tmp_path / "evil.npy")


def test_npz_with_labels(tmp_path):
    images = rng_images(3, 5, 5, 3)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([2, 0, 1]))
    result = read_array(tmp_path / "d.npz")
    np.testing.assert_array_equal(result.x, images.transpose(0, 3, 1, 2))
    assert result.y.dtype == np.int64 and result.y.tolist() == [2, 0, 1]


def test_npz_without_image_key_lists_keys(tmp_path):
    np.savez(tmp_path / "d.npz", pixels=rng_images(2, 4, 4))
    with pytest.raises(VaekitError, match="pixels"):
        read_array(tmp_path / "d.npz")


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=rng_images(3, 4, 4), y=np.array([0, 1]))
    with pytest.raises(VaekitError, match="3 labels"):
        read_array(tmp_path / "d.npz")


def test_corrupt_npz_refused(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(VaekitError, match=r"c\.npz"):
        read_array(tmp_path / "c.npz")


def test_array_resize_and_channels_via_load_images(tmp_path):
    np.save(tmp_path / "a.npy", np.full((2, 8, 8), 200, dtype=np.uint8))
    result = load_images(str(tmp_path / "a.npy"), image_size=(4, 6), channels=3)
    assert result.x.shape == (2, 3, 4, 6) and result.x.dtype == np.uint8
    assert (result.x == 200).all()  # a flat image stays flat under resampling


# --- folders ---------------------------------------------------------------------------------------


def save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


def test_flat_folder_greyscale_png_exact(tmp_path):
    images = rng_images(3, 6, 5)
    for i, image in enumerate(images):
        save(tmp_path / f"{i}.png", image)
    result = read_folder(tmp_path)
    assert result.y is None and result.classes is None
    np.testing.assert_array_equal(result.x[:, 0], images)


def test_class_folders_png_and_jpeg_rgb(tmp_path):
    save(tmp_path / "cat" / "a.png", rng_images(8, 8, 3))
    save(tmp_path / "cat" / "b.jpg", rng_images(8, 8, 3, seed=1))
    save(tmp_path / "ant" / "nested" / "c.jpeg", rng_images(8, 8, 3, seed=2))
    result = read_folder(tmp_path)
    assert result.classes == ["ant", "cat"]
    assert result.y.tolist() == [0, 1, 1]
    assert result.x.shape == (3, 3, 8, 8)


def test_mixed_grey_and_rgb_gives_three_channels_unless_asked(tmp_path):
    save(tmp_path / "g.png", np.full((4, 4), 100, dtype=np.uint8))
    save(tmp_path / "c.png", np.full((4, 4, 3), (255, 0, 0), dtype=np.uint8))
    rgb = read_folder(tmp_path)
    assert rgb.x.shape == (2, 3, 4, 4)
    assert rgb.x[1, :, 0, 0].tolist() == [100, 100, 100]  # sorted: c.png, g.png
    grey = read_folder(tmp_path, channels=1)
    assert grey.x.shape == (2, 1, 4, 4)
    assert grey.x[:, 0, 0, 0].tolist() == [76, 100]  # luma of pure red


def test_resize_to_image_size(tmp_path):
    save(tmp_path / "a.png", np.zeros((10, 20), dtype=np.uint8))
    save(tmp_path / "b.png", np.zeros((30, 12), dtype=np.uint8))
    assert read_folder(tmp_path, image_size=(16, 8)).x.shape == (2, 1, 16, 8)


def test_mismatched_sizes_need_image_size(tmp_path):
    save(tmp_path / "a.png", np.zeros((10, 20), dtype=np.uint8))
    save(tmp_path / "b.png", np.zeros((30, 12), dtype=np.uint8))
    with pytest.raises(VaekitError, match=r"a\.png is 10x20 but b\.png is 30x12.*--image-size"):
        read_folder(tmp_path)


def test_non_image_files_skipped_with_warning(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    with pytest.warns(UserWarning, match="skipped 2 non-image"):
        result = read_folder(tmp_path)
    assert len(result.x) == 1


def test_hidden_folders_are_not_classes(tmp_path):
    save(tmp_path / "dog" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    save(tmp_path / ".ipynb_checkpoints" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    assert read_folder(tmp_path).classes == ["dog"]


def test_corrupt_png_is_named(tmp_path):
    save(tmp_path / "good.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(VaekitError, match=r"broken\.png"):
        read_folder(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(VaekitError, match="no images"):
        read_folder(tmp_path)


def test_loose_images_beside_class_folders_refused(tmp_path):
    save(tmp_path / "dog" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    save(tmp_path / "stray.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(VaekitError, match="stray.png"):
        read_folder(tmp_path)


def test_modes_are_converted(tmp_path):
    grey = np.full((4, 4), 128, dtype=np.uint8)
    save(tmp_path / "one.png", np.full((4, 4), 255, dtype=np.uint8), "1")
    save(tmp_path / "la.png", np.dstack([grey, np.full((4, 4), 255, np.uint8)]))
    save(tmp_path / "i16.png", np.full((4, 4), 65535, dtype=np.uint16))
    save(tmp_path / "p.gif", grey, "P")
    result = read_folder(tmp_path)
    assert result.x.shape == (4, 1, 4, 4)  # all greyscale
    by_name = dict(zip(["i16", "la", "one", "p"], result.x[:, 0, 0, 0].tolist(), strict=True))
    assert by_name == {"i16": 255, "la": 128, "one": 255, "p": 128}


def test_alpha_composited_on_white_and_cmyk(tmp_path):
    clear = np.zeros((4, 4, 4), dtype=np.uint8)  # black, fully transparent
    save(tmp_path / "a.png", clear)
    save(tmp_path / "b.jpg", np.full((4, 4, 3), (0, 0, 255), np.uint8), "CMYK")
    result = read_folder(tmp_path)
    assert result.x.shape == (2, 3, 4, 4)
    assert result.x[0, :, 0, 0].tolist() == [255, 255, 255]
    assert result.x[1, 2, 0, 0] > 200 and result.x[1, 0, 0, 0] < 50


# --- digits and dispatch ---------------------------------------------------------------------------


def test_digits():
    digits = load_digits()
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.dtype == np.uint8
    assert digits.x.max() == 255 and digits.x.min() == 0
    assert digits.y.shape == (1797,) and set(digits.y.tolist()) == set(range(10))
    assert digits.classes == [str(d) for d in range(10)]


def test_digits_has_no_test_split():
    with pytest.raises(VaekitError, match="no test split"):
        load_images("digits", split="test")


def test_load_images_missing_path():
    with pytest.raises(VaekitError, match="no such file or folder: /nonexistent/x"):
        load_images("/nonexistent/x")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"split": "valid"}, "split"),
    ({"channels": 2}, "channels"),
    ({"image_size": (0, 4)}, "image size"),
])
def test_load_images_bad_options(kwargs, message):
    with pytest.raises(VaekitError, match=message):
        load_images("digits", **kwargs)


def test_load_images_folder_dispatch(tmp_path):
    save(tmp_path / "a" / "x.png", np.zeros((4, 4), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = load_images(str(tmp_path), image_size=(2, 2))
    assert result.x.shape == (1, 1, 2, 2) and result.classes == ["a"]

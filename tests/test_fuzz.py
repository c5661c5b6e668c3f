"""Fuzzing the boundaries where untrusted bytes enter vaekit: every input must end in a correct
result or a VaekitError, never another exception or a hang.

Hypothesis generates the inputs (bounded: the whole file runs in well under a minute); the
crafted corpus in faultlib.py adds the hostile files a generator would rarely hit (IDX headers
announcing terabytes, truncated gzip, pickles named like checkpoints, odd picture modes).
"""
import gzip
import io
import json
import math
import os
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from vaekit import api, runs
from vaekit.data.images import read_array, read_idx
from vaekit.data.sources import load_images
from vaekit.data.text import read_csv_column, read_lines
from vaekit.errors import VaekitError
from vaekit.modalities import image, text
from vaekit.models import MODELS
from vaekit.tokenizer import Tokenizer, TokenizerConfig
from vaekit.training import TrainConfig

from .faultlib import crafted_inputs, try_case

# VAEKIT_FUZZ_EXAMPLES=1000 for a longer hunt; 60 keeps the file well under a minute in CI.
FUZZ = settings(max_examples=int(os.environ.get("VAEKIT_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def outcome(fn, *args, **kwargs):
    """fn's result, or None when it refused the input with a VaekitError (anything else fails)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except VaekitError as e:
            assert str(e) and "\n" not in str(e).strip()  # one clear line
            return None


# ---- IDX -----------------------------------------------------------------------------------------
@st.composite
def idx_files(draw):
    """IDX-like bytes: a mostly plausible header with wrong pieces, a payload of any length."""
    ndim = draw(st.integers(0, 5))
    magic = bytes([draw(st.sampled_from([0, 0, 0, 1])), draw(st.sampled_from([0, 0, 0, 7])),
                   draw(st.sampled_from([8, 8, 8, 9, 0x0D, 0xFF])), ndim])
    dims = draw(st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), min_size=ndim, max_size=ndim))
    header = magic + struct.pack(f">{ndim}I", *dims)
    exact = math.prod(dims) if math.prod(dims) <= 4096 else 0
    payload = bytes(draw(st.sampled_from([exact, max(exact - 1, 0), exact + 1, draw(st.integers(0, 300))])))
    data = header + payload
    if draw(st.booleans()):
        data = draw(st.sampled_from([data[:draw(st.integers(0, len(data)))], data]))
    if draw(st.booleans()):
        packed = gzip.compress(data)
        data = packed[:draw(st.integers(0, len(packed)))] if draw(st.booleans()) else packed
    return data, dims, exact, len(payload)


@FUZZ
@given(idx_files())
def test_idx_reader(tmp_path, case):
    data, dims, exact, payload = case
    path = tmp_path / "f-idx3-ubyte"
    path.write_bytes(data)
    array = outcome(read_idx, path)
    if array is not None:  # only a file whose header accounts for every byte is read
        assert array.dtype == np.uint8 and array.shape == tuple(dims)
    assert outcome(load_images, str(path)) is None or array is not None


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_as_idx_npy_and_pictures(tmp_path, data):
    for name, reader in (("x-idx3-ubyte", read_idx), ("x.npy", read_array), ("x.npz", read_array)):
        (tmp_path / name).write_bytes(data)
        outcome(reader, tmp_path / name)
    folder = tmp_path / "pictures"
    folder.mkdir(exist_ok=True)
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    outcome(load_images, str(folder))


ARRAY_DTYPES = [np.uint8, np.int8, np.int64, np.uint16, np.float16, np.float32, np.float64, np.bool_,
                np.complex64, np.dtype("U2"), np.dtype("M8[s]")]


@FUZZ
@given(hnp.arrays(st.sampled_from(ARRAY_DTYPES), hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6)),
       st.one_of(st.none(), hnp.arrays(st.sampled_from([np.int64, np.float32, np.uint8]),
                                       hnp.array_shapes(min_dims=1, max_dims=2, max_side=6))),
       st.sampled_from(["x", "images", "arr_0", "other"]))
def test_npy_and_npz_arrays_of_any_dtype_and_shape(tmp_path, x, y, key):
    np.save(tmp_path / "a.npy", x)
    images = outcome(read_array, tmp_path / "a.npy")
    if images is not None:
        assert images.x.dtype == np.uint8 and images.x.ndim == 4 and images.x.shape[1] in (1, 3, 4)
    arrays = {key: x} if y is None else {key: x, "labels": y}
    np.savez(tmp_path / "a.npz", **arrays)
    images = outcome(read_array, tmp_path / "a.npz")
    if images is not None and images.y is not None:
        assert images.y.dtype == np.int64 and len(images.y) == len(images.x) and images.y.min() >= 0


# ---- pictures of any mode and size ---------------------------------------------------------------
MODES = ["1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(MODES), st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=3),
       st.sampled_from([None, (8, 8), (1, 30)]), st.sampled_from([None, 1, 3]), st.integers(0, 2**32 - 1))
def test_picture_folders(tmp_path, pictures, size, channels, seed):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    rng = np.random.default_rng(seed)
    for i, (mode, w, h) in enumerate(pictures):
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        deep = mode in ("I;16", "I", "F")
        picture = Image.new(mode, (w, h), int(rng.integers(0, 70000))) if deep else rgb.convert(mode)
        picture.save(folder / f"{i}.{'tif' if mode in ('CMYK', 'I;16', 'I', 'F', 'YCbCr') else 'png'}")
    images = outcome(load_images, str(folder), image_size=size, channels=channels)
    if images is not None:
        assert images.x.dtype == np.uint8 and images.x.ndim == 4 and len(images.x) == len(pictures)
        assert images.x.shape[1] in ((channels,) if channels else (1, 3))
        if size:
            assert images.x.shape[2:] == size
    sizes = {(w, h) for _, w, h in pictures}
    if size is not None or len(sizes) == 1:
        assert images is not None  # every readable picture of one size (or resized) loads


# ---- text and CSV --------------------------------------------------------------------------------
LINE_PIECES = st.one_of(st.binary(max_size=30), st.sampled_from(
    [b"\n", b"\r\n", b"\r", b"\x00", b"\x0c", b"\xef\xbb\xbf", b"\xc2\x85", b"\xe2\x80\xa8", b"\xff", b"\xc3",
     b"word ", b"x" * 300, b'"', b",", b"\t"]))


@FUZZ
@given(st.lists(LINE_PIECES, max_size=40).map(b"".join), st.sampled_from(["strict", "replace"]), st.booleans(),
       st.sampled_from([5, 64, 10_000]))
def test_text_lines(tmp_path, data, errors, truncate, max_chars):
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    sentences = outcome(read_lines, path, encoding_errors=errors, max_chars=max_chars, truncate=truncate)
    if sentences is not None:
        assert sentences and all(isinstance(s, str) and s == s.strip() and len(s) <= max_chars for s in sentences)
        assert not any(ch in s for s in sentences for ch in "\n\r\x00\x0c\x85\u2028")


@FUZZ
@given(st.lists(LINE_PIECES, max_size=40).map(b"".join), st.sampled_from(["text", "0", 1, "missing", -1]),
       st.booleans())
def test_csv_columns(tmp_path, data, column, header):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    cells = outcome(read_csv_column, path, column, header=header, max_chars=200, truncate=True)
    if cells is not None:
        assert all(isinstance(c, str) and c and len(c) <= 200 for c in cells)


def test_a_one_megabyte_line_is_read_in_bounded_memory_and_cut_or_refused(tmp_path):
    path = tmp_path / "long.txt"
    path.write_bytes(b"a" * 2**20 + b"\n" + b"fine line\n")
    assert outcome(read_lines, path) is None
    assert read_lines(path, truncate=True, max_chars=100) == ["a" * 100, "fine line"]


# ---- JSON a run directory may hold ---------------------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=20)


def field_values(cls):
    """Dicts of cls's field names (and a stray key now and then) to hostile values."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls)] + ["unknown_key"]
    return st.dictionaries(st.sampled_from(names), JSON, max_size=4)


CONFIG_CLASSES = [TrainConfig, image.ImageDataConfig, text.TextDataConfig, TokenizerConfig]


@FUZZ
@given(st.sampled_from(CONFIG_CLASSES).flatmap(lambda cls: st.tuples(st.just(cls), field_values(cls))))
def test_config_json_with_hostile_values(case):
    cls, values = case
    config = outcome(api.from_dict, cls, values, "config.json 'x'")
    if config is not None:
        assert isinstance(config, cls)
        for key, value in values.items():  # accepted values are the ones given (lists as tuples)
            got = getattr(config, key)
            assert got == (tuple(value) if isinstance(value, list) else value) or key == "image_size"


@FUZZ
@given(st.sampled_from(sorted(MODELS)).flatmap(lambda name: st.tuples(st.just(name),
                                                                       field_values(MODELS[name][0].Config))))
def test_model_configs_with_hostile_values_never_allocate_absurd_models(case):
    name, values = case
    model = outcome(api.model_from_config, {"model": {"name": name, "config": values}})
    if model is not None:
        assert sum(p.numel() for p in model.parameters()) <= 1_000_000_000


@FUZZ
@given(JSON, st.booleans())
def test_run_configs(tmp_path, config, tagged):
    if tagged and isinstance(config, dict):
        config = {**config, "format": runs.FORMAT, "format_version": runs.FORMAT_VERSION}
    (tmp_path / runs.CONFIG).write_text(json.dumps(config))
    outcome(api.load, tmp_path)


@FUZZ
@given(st.one_of(JSON, st.fixed_dictionaries(
    {"format": st.just("vaekit-tokenizer"), "format_version": st.sampled_from([1, 1.0, 2, True, "1"]),
     "config": st.one_of(st.just({}), field_values(TokenizerConfig)),
     "words": st.one_of(st.lists(st.text(max_size=6), max_size=6), JSON)})))
def test_tokenizer_json(data):
    tokenizer = outcome(Tokenizer.from_json, data)
    if tokenizer is not None:
        assert Tokenizer.from_json(tokenizer.to_json()).index_word == tokenizer.index_word


@pytest.mark.parametrize("data", [b"[" * 200_000, b'{"a":' * 200_000, b"1e99999", b"NaN", b"\xff\xfe{}",
                                  b" " * (runs.MAX_JSON_BYTES + 1)])
def test_json_files_nested_huge_or_not_utf8(tmp_path, data):
    path = tmp_path / "x.json"
    path.write_bytes(data)
    outcome(runs.read_json, path)
    outcome(Tokenizer.load, path)


# ---- the crafted corpus --------------------------------------------------------------------------
def test_crafted_corpus_is_handled_cleanly(tmp_path):
    cases = crafted_inputs(tmp_path / "corpus")
    results = {case.name: try_case(case) for case in cases}
    failures = {name: what for name, (ok, what) in results.items() if not ok}
    assert failures == {}
    assert len(results) >= 60
    assert not (tmp_path / "corpus" / "PWNED").exists()  # the pickles were never unpickled
    expect = {"idx-size-beyond-file": "announces shape", "idx-gzip-truncated": "truncated",
              "run-newer-version": "upgrade vaekit", "run-older-version": "version 0",
              "run-vocab-huge": "vocab_size", "run-latent-negative": "latent_dim",
              "run-image-huge": "parameters", "run-units-empty": "at least one layer",
              "run-latent-string": "whole number",
              "run-pickle-weights": "safetensors", "run-pickle-checkpoint": "safetensors",
              "csv-ragged.csv": "fields", "text-invalid-utf8.txt": "UTF-8", "text-1mb-line.txt": "longer than"}
    for name, words in expect.items():
        assert words in results[name][1], (name, results[name])
    assert results["idx-good"][1] == "ok" and results["image-L-5000x1"][1] == "ok"


def test_truncated_gzip_at_every_length_is_refused(tmp_path):
    packed = gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 4, 4) + bytes(32))
    for end in range(len(packed)):
        (tmp_path / "t").write_bytes(packed[:end])
        assert outcome(read_idx, tmp_path / "t") is None, end
    (tmp_path / "t").write_bytes(packed)
    assert read_idx(tmp_path / "t").shape == (2, 4, 4)


def test_pictures_of_extreme_shapes(tmp_path):
    for size in [(1, 1), (5000, 1), (1, 5000)]:
        folder = tmp_path / f"{size[0]}x{size[1]}"
        folder.mkdir()
        buffer = io.BytesIO()
        Image.new("L", size, 128).save(buffer, format="PNG")
        (folder / "a.png").write_bytes(buffer.getvalue())
        assert load_images(str(folder)).x.shape == (1, 1, size[1], size[0])

"""A slice of the generated bad-input corpus (tests/fuzzlib.py; bench/faults.py runs all ~730):
seeded mutations of good IDX, npy/npz, picture, text, CSV, tokenizer.json and safetensors files,
of a trained run's files, and hostile values for every verb's options. Each must end in a result,
one VaekitError or a clean CLI exit (0, or 2 with a message), within a time limit, without
changing any file that existed before it. VAEKIT_FUZZ_SEED picks another slice.
"""
import os

import pytest
import torch

from .fuzzlib import generated_inputs, make_templates, run_cases

SEED = int(os.environ.get("VAEKIT_FUZZ_SEED", "0"))


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    before = torch.get_num_threads()
    yield make_templates(tmp_path_factory.mktemp("templates"))
    torch.set_num_threads(before)


def test_generated_bad_inputs_are_all_handled(tmp_path, templates):
    cases = generated_inputs(tmp_path / "corpus", templates, seed=SEED, scale=0.15)
    assert len(cases) >= 100 and len({c.name.split("-")[0] for c in cases}) == 9
    report = run_cases(cases, tmp_path / "corpus", limit=60)
    assert report.failures == [] and report.hangs == 0
    assert report.files_changed == []
    assert report.handled == report.tried == len(cases)


# ---- what the generated corpus found (issue 30), each pinned by one case -----------------------------
def test_an_npy_header_python_cannot_tokenize_is_a_clear_error(tmp_path):
    from vaekit.data.images import read_array
    from vaekit.data.tabular import read_table
    from vaekit.errors import VaekitError

    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,"  # never closed: TokenError in numpy
    path = tmp_path / "a.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header.ljust(118) + b"\n").to_bytes(2, "little")
                     + header.ljust(118) + b"\n" + bytes(16))
    for read in (read_array, lambda p: read_table(str(p))):
        with pytest.raises(VaekitError, match="cannot read array file"):
            read(path)


def test_a_huge_image_size_is_refused_before_any_resize(tmp_path):
    from vaekit.data.images import read_folder
    from vaekit.errors import VaekitError

    from .faultlib import png_bytes

    (tmp_path / "a.png").write_bytes(png_bytes("L", (4, 4)))
    with pytest.raises(VaekitError, match="too large: at most 4096"):
        read_folder(tmp_path, 100_000)  # asked for 10 GB per picture and channel


@pytest.mark.parametrize("source", ["", "/"])
def test_refine_of_something_that_is_no_run_is_refused(source, capsys):
    from vaekit.cli import main

    assert main(["refine", source, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "is not a run directory (it has no config.json)" in err and "Traceback" not in err

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

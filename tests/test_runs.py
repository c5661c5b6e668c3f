import json

import pytest

from vaekit import runs
from vaekit.errors import VaekitError


def test_refuses_a_non_empty_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(VaekitError, match="not a vaekit run"):
        runs.prepare_run_dir(tmp_path, overwrite=True)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_existing_run_needs_overwrite_and_overwrite_keeps_foreign_files(tmp_path):
    run = runs.prepare_run_dir(tmp_path / "run")
    runs.write_json(run / runs.CONFIG, {"format": runs.FORMAT, "format_version": runs.FORMAT_VERSION})
    (run / "notes.txt").write_text("mine")
    with pytest.raises(VaekitError, match="--resume"):
        runs.prepare_run_dir(run)
    runs.prepare_run_dir(run, overwrite=True)
    assert not (run / runs.CONFIG).exists()
    assert (run / "notes.txt").read_text() == "mine"


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    runs.atomic_write(tmp_path / "a.json", b"{}")
    runs.atomic_write(tmp_path / "a.json", b"[]")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == []


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ('{"format": "other"}', "not a vaekit run"),
    ('{"format": "vaekit-run", "format_version": 99}', "upgrade vaekit"),
    ('{"format": "vaekit-run", "format_version": 0}', "version 0"),
])
def test_bad_configs_are_refused_clearly(tmp_path, content, match):
    (tmp_path / runs.CONFIG).write_text(content)
    with pytest.raises(VaekitError, match=match):
        runs.read_config(tmp_path)


def test_corrupt_safetensors_is_refused(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(VaekitError, match="safetensors"):
        runs.load_tensors(tmp_path / "w.safetensors")

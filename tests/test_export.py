"""ONNX export: every registered model's graphs agree with PyTorch in onnxruntime (max abs
difference <= 1e-4) at another batch size (and sentence length) than the export's, and the CLI."""
import json

import numpy as np
import pytest
import torch

from vaekit.cli import main
from vaekit.export import export_model, max_difference, sentences
from vaekit.models import build_model

pytest.importorskip("onnxruntime")

from .models import SMALL, VARIANTS, build_variant, variant_id


@pytest.fixture(params=VARIANTS, ids=variant_id)
def model(request):
    torch.manual_seed(0)
    return build_variant(request.param)


def test_every_model_round_trips_through_onnxruntime(model, tmp_path):
    manifest = export_model(model, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {g["file"] for g in manifest["graphs"].values()}
    for batch in (1, 7):
        diffs = max_difference(model, tmp_path, batch=batch)
        assert set(diffs) == set(manifest["graphs"])
        assert max(diffs.values()) <= 1e-4, diffs
    assert "encoder" in manifest["graphs"]
    encoder = manifest["graphs"]["encoder"]
    assert [o["name"] for o in encoder["outputs"]] == ["z_mean", "z_log_var"]
    assert encoder["outputs"][0]["shape"] == ["batch", model.latent_dim]


def test_padding_is_never_read_by_the_text_rnn_encoder(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model("text-rnn", **SMALL["text"]).eval()
    export_model(model, tmp_path)
    session = ort.InferenceSession(str(tmp_path / "encoder.onnx"))
    tokens = sentences(3, 6, 50)
    padded = torch.cat([tokens, torch.zeros(3, 5, dtype=torch.long)], 1)  # more trailing padding
    a, b = (session.run(["z_mean"], {"tokens": t.numpy()})[0] for t in (tokens, padded))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_greedy_decoding_in_onnxruntime_matches_vaekit(tmp_path):
    import onnxruntime as ort

    from vaekit.generate import decode

    torch.manual_seed(0)
    model = build_model("text-rnn", **SMALL["text"]).eval()
    export_model(model, tmp_path)
    init, step = (ort.InferenceSession(str(tmp_path / f"{n}.onnx")) for n in ("decoder_init", "decoder_step"))
    z = torch.randn(4, model.latent_dim)
    h, c = init.run(None, {"z": z.numpy()})
    token, ids = np.full((4, 1), 2, dtype=np.int64), []
    for _ in range(model.config.max_len):
        logits, h, c = step.run(None, {"token": token, "z": z.numpy(), "h": h, "c": c})
        token = logits.argmax(-1)[:, None]
        ids.append(token[:, 0])
    ids = np.stack(ids, 1)
    ids[np.cumsum(ids == 3, 1) - (ids == 3) > 0] = 0  # padding after <eos>, as vaekit returns
    assert np.array_equal(ids, decode(model, z).numpy())


def test_cli_export(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "image", "--data", "digits", "--model", "seed", "--epochs", "1", "--no-progress",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--onnx"]) == 0
    out = capsys.readouterr().out
    assert "max |onnxruntime - torch|" in out
    manifest = json.loads((run / "onnx" / "manifest.json").read_text())
    assert set(manifest["graphs"]) == {"encoder", "decoder"}
    assert manifest["graphs"]["decoder"]["outputs"][0]["shape"] == ["batch", 1, 8, 8]
    assert main(["export", str(run), "--onnx"]) == 2  # never over an earlier export unless told
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(run), "--onnx", "--out", str(tmp_path / "elsewhere")]) == 0
    assert main(["export", str(tmp_path / "nope"), "--onnx"]) == 2
    (tmp_path / "afile.txt").write_text("mine")
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", "--out", str(tmp_path / "afile.txt"), "--overwrite"]) == 2
    assert "is a file; --out takes a folder" in capsys.readouterr().err
    assert (tmp_path / "afile.txt").read_text() == "mine"
    assert main(["export", str(run)]) == 2  # the format must be named

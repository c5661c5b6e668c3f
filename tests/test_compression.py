"""Bits-back compression (vaekit.compression, `vaekit compress` / `decompress`): exact round trips
for every supported kind and model, a file format that refuses what it cannot trust, and the same
probabilities in another process with another thread count."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("constriction")

import vaekit  # noqa: E402
from vaekit import compression  # noqa: E402
from vaekit.cli import main  # noqa: E402
from vaekit.errors import VaekitError  # noqa: E402
from vaekit.modalities import (
    ImageDataConfig,  # noqa: E402
    TextDataConfig,  # noqa: E402
)
from vaekit.models import build_model  # noqa: E402
from vaekit.training import TrainConfig  # noqa: E402

IMAGE_MODELS = {  # run name: (model, likelihood, model options)
    "conv-bernoulli": ("conv", "bernoulli", {"latent_dim": 4, "hidden_dim": 16}),
    "seed-logistic": ("seed", "logistic", {}),
    "conv-logistic-mix": ("conv", "logistic-mix", {"latent_dim": 3, "hidden_dim": 16}),
    "conv-pixel": ("conv-pixel", "bernoulli", {"latent_dim": 3, "pixel_channels": 8, "pixel_layers": 1}),
    "conv-pixel-logistic-mix": ("conv-pixel", "logistic-mix", {"latent_dim": 3, "pixel_channels": 8,
                                                               "pixel_layers": 1}),
    "image-mlp": ("image-mlp", "bernoulli", {"hidden": (16,)}),
    "conv-rgb-logistic": ("conv", "logistic", {"image_shape": (3, 8, 8), "latent_dim": 3, "hidden_dim": 16}),
    "conv-pixel-rgb-logistic": ("conv-pixel", "logistic", {"image_shape": (3, 8, 8), "latent_dim": 3,
                                                           "pixel_channels": 8, "pixel_layers": 1}),
}


def untrained_run(path, kind: str, data, model: str, files: dict | None = None, **options):
    """A run directory of a freshly initialised model (seeded), written as training writes one: bits-back
    coding is exact for any weights, and the trainer's imports and plots would cost most of this file's time."""
    from vaekit import runs
    from vaekit.api import run_config

    torch.manual_seed(0)
    vae = build_model(model, **options).eval()
    path.mkdir(parents=True)
    for name, content in (files or {}).items():
        runs.atomic_write(path / name, content)
    runs.save_tensors(path / runs.WEIGHTS, vae.state_dict())
    runs.write_json(path / runs.STATUS, {"state": "complete"})
    runs.write_json(path / runs.CONFIG, run_config(kind, vae, data, TrainConfig()))
    return vaekit.load(path)


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {name: untrained_run(root / name, "image", ImageDataConfig("digits"), model,
                                **{"image_shape": (1, 8, 8), "likelihood": likelihood, **options})
            for name, (model, likelihood, options) in IMAGE_MODELS.items()}


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from vaekit.tokenizer import Tokenizer

    tokenizer = Tokenizer().fit(["return the value of the named attribute of object .",
                                 "the list returns a new list of the values", "a value or a list ."])
    files = {"tokenizer.json": json.dumps(tokenizer.to_json()).encode()}
    return untrained_run(tmp_path_factory.mktemp("runs") / "text", "text", TextDataConfig("stdlib-docs"), "text-rnn",
                         files, vocab_size=tokenizer.vocab_size, max_len=20, embed_dim=16, encoder_dim=16,
                         decoder_dim=32, latent_dim=3)


@pytest.fixture(scope="module")
def digits8():
    from sklearn.datasets import load_digits

    return np.round(load_digits().images * 255 / 16).astype(np.uint8)  # (1797, 8, 8)


def binary_or_8bit(name: str, digits8: np.ndarray) -> np.ndarray:
    return (digits8 > 127).astype(np.uint8) if IMAGE_MODELS[name][1] == "bernoulli" else digits8


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_round_trip_is_exact(image_runs, digits8, name):
    run = image_runs[name]
    n = 6 if name.startswith("conv-pixel") else 40  # the pixel decoder walks pixel by pixel
    x = binary_or_8bit(name, digits8)[:n]
    if name.endswith("rgb-logistic"):  # (N, 3, 8, 8): three shifted copies as the colour channels
        x = np.stack([x, np.roll(x, 1, 0), 255 - x], 1)
    blob = run.compress(x, chains=3)
    back = run.decompress(blob)
    assert back.dtype == x.dtype and back.shape == x.shape and np.array_equal(back, x)
    assert blob.startswith(compression.MAGIC)


def test_the_encoder_sees_decoded_images_as_it_saw_them(image_runs, digits8, monkeypatch):
    """Decoding gives the encoder contiguous (N, C, H, W) batches, as encoding did: on Intel AMX a
    channels-last view of three-channel images took another oneDNN kernel whose last-bit differences
    moved posteriors across a grid cell, and the file did not decode. Checked on every CPU, not only
    where the difference shows."""
    seen = []
    run = image_runs["conv-rgb-logistic"]
    encode = run.model.encode
    monkeypatch.setattr(run.model, "encode", lambda x: (seen.append(x.is_contiguous()), encode(x))[1])
    x = digits8[:6]
    run.decompress(run.compress(np.stack([x, np.roll(x, 1, 0), 255 - x], 1), chains=3))
    assert len(seen) == 4 and all(seen)  # two rounds each way


def test_binary_arrays_keep_their_type_and_values(image_runs, digits8):
    run = image_runs["conv-bernoulli"]
    as_bool = digits8[:5, None] > 127  # (5, 1, 8, 8) bool
    as_255 = as_bool.astype(np.uint8) * 255  # black and white 8-bit
    for x in (as_bool, as_255, as_bool.astype(np.int64)):
        back = run.decompress(run.compress(x))
        assert back.dtype == x.dtype and np.array_equal(back, x)


def test_the_code_length_follows_the_elbo(image_runs, digits8):
    """A bits-back code costs about -ELBO per example (Townsend et al. 2019), plus the chain's initial
    bits and the header."""
    run = image_runs["conv-bernoulli"]
    x = (digits8[:200] > 127).astype(np.uint8)
    blob = run.compress(x, chains=1)
    with torch.no_grad():
        xt = torch.from_numpy(x[:, None]).float()
        q = run.model.encode(xt)
        neg_elbo = -(run.model.log_likelihood(xt, q.mean) - q.kl().sum(1)).mean().item()  # nats, at the mean
    header_bytes = 400
    per_image_bits = (8 * len(blob) - 8 * header_bytes) / len(x)
    assert per_image_bits < 1.15 * neg_elbo / math.log(2) + 5


TEXT = ("return the value of the named attribute of object\n"
        " The ZORBLAX  returns  a <unk> list . \n\n"  # case, an unknown word, double spaces, literal <unk>
        "<eos> <pad> <bos> café ☃\tx\r\n"  # the specials typed as text, UTF-8, tab and CR
        "last line without a newline").encode() + b" \xff\xfe invalid utf-8"


@pytest.mark.parametrize("text", [TEXT, b"", b"\n", b" ", b"\n\n  \n", TEXT + b"\n", TEXT.decode("utf-8", "replace")])
def test_text_round_trip_is_exact(text_run, text):
    back = text_run.decompress(text_run.compress(text, chains=2))
    assert type(back) is type(text) and back == text


def test_text_escapes_code_unknown_words_exactly(text_run):
    _, escapes = compression.line_tokens(text_run.tokenizer, [b"zorblax", b"<unk>", b"the"])
    assert escapes == [*b"zorblax", compression.END, compression.LITERAL_UNK]
    for line in [b"", b" ", b"  ", b" a  b ", b"a", b"a "]:
        assert compression.join_line(*compression.split_line(line)) == line


def test_refuses_what_the_run_cannot_code(image_runs, text_run, digits8):
    bern, logi = image_runs["conv-bernoulli"], image_runs["seed-logistic"]
    with pytest.raises(VaekitError, match="binary images"):
        bern.compress(digits8[:3])
    with pytest.raises(VaekitError, match="shape"):
        logi.compress(np.zeros((2, 1, 9, 8), dtype=np.uint8))
    with pytest.raises(VaekitError, match="integers"):
        logi.compress(digits8[:2] / 255.0)
    with pytest.raises(VaekitError, match="0..255"):
        logi.compress(np.full((1, 8, 8), 300, dtype=np.int64))
    with pytest.raises(VaekitError, match="str or bytes"):
        text_run.compress(["a list of sentences"])
    with pytest.raises(VaekitError, match="no code for pixels"):
        compression.PixelCoder(vaekit.distributions.Gaussian(1))


def test_a_file_it_cannot_trust_gives_one_clear_error(image_runs, text_run, digits8):
    run = image_runs["conv-bernoulli"]
    blob = run.compress((digits8[:20] > 127).astype(np.uint8))
    with pytest.raises(VaekitError, match="another run"):
        image_runs["conv-pixel"].decompress(blob)
    with pytest.raises(VaekitError, match="another run"):
        text_run.decompress(blob)
    for cut in (1, 10, len(blob) // 2, len(blob) - 1):
        with pytest.raises(VaekitError, match="truncated|magic"):
            run.decompress(blob[:cut])
    # magic, version, header, payload, checksum
    for position in (3, 9, 20, len(blob) // 2, len(blob) - 40, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[position] ^= 0x04
        with pytest.raises(VaekitError):
            run.decompress(bytes(damaged))
    with pytest.raises(VaekitError, match="magic"):
        run.decompress(b"PK\x03\x04 a zip file")


def test_other_probabilities_at_decoding_give_an_error_not_wrong_data(image_runs, text_run, digits8, monkeypatch):
    """What another CPU's arithmetic would do: the decoder's parameters off the encoder's grid."""
    run = image_runs["conv-bernoulli"]
    blobs = [(run, run.compress((digits8[:10] > 127).astype(np.uint8))), (text_run, text_run.compress(TEXT))]
    shifted = compression.rounded
    monkeypatch.setattr(compression, "rounded", lambda t: shifted(t) + 50 * compression.PARAM_GRID)
    for run, blob in blobs:  # the text decoder also stops: no line runs past the file's longest
        with pytest.raises(VaekitError, match="do not check out"):
            run.decompress(blob)


CROSS_PROCESS = textwrap.dedent("""
    import sys, numpy as np, torch, vaekit
    threads, action, pairs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    torch.set_num_threads(threads)
    for run_path, data, packed in zip(pairs[::3], pairs[1::3], pairs[2::3]):
        run = vaekit.load(run_path)
        original = np.load(data) if data.endswith(".npy") else open(data, "rb").read()
        if action == "compress":
            open(packed, "wb").write(run.compress(original))
        else:
            print("EXACT" if np.array_equal(run.decompress(open(packed, "rb").read()), original) else "DIFFERENT")
""")


def test_same_probabilities_across_processes_and_thread_counts(image_runs, text_run, digits8, tmp_path):
    """Compress in a process with one thread, decompress in another with two (CPU, this machine)."""
    script = tmp_path / "cross.py"
    script.write_text(CROSS_PROCESS)
    images, binary, text = tmp_path / "x.npy", tmp_path / "b.npy", tmp_path / "x.txt"
    np.save(images, digits8[:64])
    np.save(binary, binary_or_8bit("conv-pixel", digits8)[:8])  # the pixel decoder, walked pixel by pixel
    np.save(tmp_path / "p8.npy", digits8[:4])  # the pixel decoder with 8-bit levels
    text.write_bytes(TEXT)
    pairs = [str(image_runs["conv-logistic-mix"].path), str(images), str(tmp_path / "x.vz"),
             str(image_runs["conv-pixel"].path), str(binary), str(tmp_path / "b.vz"),
             str(image_runs["conv-pixel-logistic-mix"].path), str(tmp_path / "p8.npy"), str(tmp_path / "p8.vz"),
             str(text_run.path), str(text), str(tmp_path / "t.vz")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for threads, action in ((1, "compress"), (2, "decompress")):
        out = subprocess.run([sys.executable, str(script), str(threads), action, *pairs], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["EXACT"] * 4


def test_cli_round_trip_of_a_png_folder_and_a_text_file(image_runs, text_run, digits8, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "pngs"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.where(digits8[i] > 127, 255, 0).astype(np.uint8)).save(folder / f"{i}.png")  # mode L
    Image.fromarray(digits8[4] > 127).save(folder / "sub" / "bilevel.png")  # mode 1
    run = str(image_runs["conv-bernoulli"].path)
    packed, restored = tmp_path / "pngs.vz", tmp_path / "restored"
    assert main(["compress", run, "--data", str(folder), "--out", str(packed)]) == 0
    assert main(["decompress", str(packed), "--run", run, "--out", str(restored)]) == 0
    for path in sorted(folder.rglob("*.png")):
        a, b = Image.open(path), Image.open(restored / path.relative_to(folder))
        assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    capsys.readouterr()
    assert main(["compress", run, "--data", str(folder), "--out", str(packed)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["decompress", str(packed), "--run", run, "--out", str(restored)]) == 2  # not empty
    (folder / "notes.txt").write_text("not an image")
    assert main(["compress", run, "--data", str(folder), "--out", str(packed), "--overwrite"]) == 2
    assert "not PNG" in capsys.readouterr().err

    text = tmp_path / "t.txt"
    text.write_bytes(TEXT)
    assert main(["compress", str(text_run.path), "--data", str(text), "--out", str(tmp_path / "t.vz")]) == 0
    assert main(["decompress", str(tmp_path / "t.vz"), "--run", str(text_run.path), "--out",
                 str(tmp_path / "back.txt")]) == 0
    assert (tmp_path / "back.txt").read_bytes() == TEXT
    assert main(["decompress", str(tmp_path / "t.vz"), "--run", run, "--out", str(tmp_path / "other.txt")]) == 2
    assert not (tmp_path / "other.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # nothing partial left behind


def test_compress_says_when_the_file_is_not_smaller(image_runs, digits8, tmp_path):
    """Data a model cannot code in fewer bits than they are stored in (uniform 8-bit noise, a byte a pixel
    in a .npy) still make an exact file, and the user is told it is no smaller; binary digits coded at
    about a bit a pixel make a smaller one, and nothing is said."""
    import warnings

    noise = np.random.default_rng(0).integers(0, 256, (200, 1, 8, 8), dtype=np.uint8)
    for name, x, smaller in (("conv-bernoulli", (digits8[:200, None] > 127).astype(np.uint8), True),
                             ("seed-logistic", noise, False)):
        np.save(tmp_path / f"{name}.npy", x)
        out = tmp_path / f"{name}.vz"
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            assert main(["compress", str(image_runs[name].path), "--data", str(tmp_path / f"{name}.npy"),
                         "--out", str(out)]) == 0
        assert (out.stat().st_size < (tmp_path / f"{name}.npy").stat().st_size) == smaller
        assert any("is not smaller than" in str(w.message) for w in said) != smaller, name


def test_discretised_logistic_sums_to_one_and_evaluate_reports_bits_per_dim(image_runs):
    from vaekit.distributions import DiscretizedLogistic

    likelihood = DiscretizedLogistic(1, components=3)
    params = 3 * torch.randn(1, 9, 2, 2)
    levels = torch.arange(256).view(256, 1, 1, 1).expand(256, 1, 2, 2)
    total = likelihood.level_log_probs(params.expand(256, -1, -1, -1), levels).exp().sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    report = vaekit.evaluate(image_runs["seed-logistic"].path, "digits", write=False, k=2, limit=20, probes=False,
                             device="cpu", echo=lambda *a, **k: None)
    metrics = {name: entry["value"] for name, entry in report["metrics"].items()}
    assert 0 < metrics["bits_per_dim"] <= 9 and math.isfinite(metrics["iw_nll"])


def test_header_says_what_the_file_holds(image_runs, digits8):
    run = image_runs["seed-logistic"]
    header, words = compression.read_header(run.compress(digits8[:12], chains=4))
    assert header["kind"] == "image" and header["shape"] == [1, 8, 8] and header["n"] == 12
    assert header["run"] == compression.run_digest(run) and len(words) == 4
    assert json.loads(json.dumps(header)) == header

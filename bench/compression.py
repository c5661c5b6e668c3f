"""Lossless compression with bits-back coding (`vaekit compress`) beside general-purpose compressors.

Three data sets, each measured from the real size of the compressed bytes (header and checksums
included) and checked to decompress exactly:

- binarised MNIST: the 10,000 test images, binarised once with seed 0 (a pixel is 1 with
  probability its grey level / 255), coded by a `conv-pixel` run (Bernoulli likelihood);
- 8-bit MNIST: the same test images as they are, coded by a `conv-pixel` run with the discretised
  logistic mixture likelihood (`--model conv-pixel --likelihood logistic-mix`: each pixel's mixture
  given z and the pixels before it);
- PTB: the test file `ptb.test.txt` byte for byte, coded by a `text-rnn` run.

Baselines, run here on the same bytes: gzip -9, bz2 -9, xz -9e (lzma preset 9 | EXTREME), zstd -19,
brotli -11, on the images as one byte per pixel (the convention of Townsend et al. 2019 and Kingma
et al. 2019) and on the text file; PNG (optimised) and WebP lossless (method 6) per image, summed.
Sizes are bits per pixel (per dimension) for images and bits per character (byte) for PTB.

    python bench/compression.py --quick      # small runs trained here (minutes), 500 images, 300 lines
    python bench/compression.py --run-binarized RUN_B --run-mnist8 RUN_8 --run-ptb RUN_T   # the benchmark

Without --run-*, runs are trained here (--epochs-* each; slow at full size: see bench/RESULTS.md for
the recipes). Goals (issue 28): binarised MNIST <= 0.16 bpd, 8-bit MNIST <= 1.29 bpd, PTB >= 25 %
smaller than the best general-purpose compressor, 10,000 images compressed and decompressed within
2 minutes each on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import io
import lzma
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REPO, data_dir, machine, write_results  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small runs trained here, 500 test images, 300 PTB lines")
    p.add_argument("--data-dir", help="folder holding mnist/ and ptb/ (default: $VAEKIT_DATA or ../shared/data)")
    p.add_argument("--run-binarized", help="a trained conv-pixel (or other Bernoulli) run for binarised MNIST")
    p.add_argument("--run-mnist8", help="a trained run with --likelihood logistic(-mix) for 8-bit MNIST")
    p.add_argument("--run-ptb", help="a trained text-rnn run for PTB")
    p.add_argument("--epochs-binarized", type=int, default=30)
    p.add_argument("--epochs-mnist8", type=int, default=25)
    p.add_argument("--epochs-ptb", type=int, default=20)
    p.add_argument("--test-limit", type=int, help="first N test images (default all; --quick 500)")
    p.add_argument("--ptb-lines", type=int, help="first N lines of ptb.test.txt (default all; --quick 300)")
    p.add_argument("--only", nargs="+", choices=("binarized", "mnist8", "ptb"), default=("binarized", "mnist8", "ptb"))
    p.add_argument("--chains", type=int, help="ANS chains (default: vaekit's, up to 64 at one per 150 examples; "
                   "--quick: 64 for the pixel decoder, which decodes pixel by pixel in batches of one per chain)")
    p.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "bench-compression",
                   help="where runs trained here go")
    p.add_argument("--out", type=Path, help="JSON report (default bench/results/compression[-quick].json)")
    args = p.parse_args(argv)
    args.root = data_dir(args.data_dir)
    if args.quick:
        args.test_limit = args.test_limit or 500
        args.ptb_lines = args.ptb_lines or 300
    args.out = args.out or REPO / "bench" / "results" / f"compression{'-quick' if args.quick else ''}.json"
    return args


# --- data ------------------------------------------------------------------------------------------

def mnist_test(args) -> tuple[np.ndarray, np.ndarray]:
    """(8-bit test images (N, 28, 28) uint8, the same binarised once with seed 0)."""
    from vaekit.data.sources import load_images

    x = load_images("mnist", split="test", data_dir=str(args.root)).x[:, 0]  # (10000, 28, 28) uint8
    if args.test_limit:
        x = x[:args.test_limit]
    rng = np.random.default_rng(0)
    binary = (rng.random(x.shape) < x / 255.0).astype(np.uint8)
    return np.ascontiguousarray(x), binary


def ptb_test(args) -> bytes:
    data = (Path(args.root) / "ptb" / "ptb.test.txt").read_bytes()
    if args.ptb_lines:
        data = b"".join(data.splitlines(keepends=True)[:args.ptb_lines])
    return data


# --- runs ------------------------------------------------------------------------------------------

def trained_run(args, which: str):
    """The run given with --run-WHICH, else one trained here (small and short with --quick)."""
    import vaekit
    from vaekit.modalities import ImageDataConfig, TextDataConfig
    from vaekit.training import TrainConfig

    given = getattr(args, f"run_{which}")
    if given:
        return vaekit.load(given)
    root = str(args.root)
    quick = args.quick
    out = args.runs_dir / f"{which}{'-quick' if quick else ''}"
    if which == "binarized":
        data = ImageDataConfig("mnist", val_data="mnist:test", binarize=True, data_dir=root,
                               limit=6000 if quick else None)
        options = dict(model="conv-pixel", latent_dim=32, hidden_dim=512 if not quick else 128)
        train = TrainConfig(epochs=1 if quick else args.epochs_binarized, lr_schedule="cosine",
                            kl_warmup_steps=10 if quick else 2000)  # the KL is paid in bits: warm it up briefly
    elif which == "mnist8":
        data = ImageDataConfig("mnist", val_data="mnist:test", data_dir=root, limit=6000 if quick else None)
        options = dict(model="conv-pixel", likelihood="logistic-mix", latent_dim=32,
                       hidden_dim=512 if not quick else 128)
        train = TrainConfig(epochs=2 if quick else args.epochs_mnist8, lr_schedule="cosine",
                            kl_warmup_steps=10 if quick else 2000)
    else:
        data = TextDataConfig("ptb", val_data="ptb:valid", data_dir=root, limit=6000 if quick else None)
        options = dict(model="text-rnn") if not quick else dict(model="text-rnn", decoder_dim=256, embed_dim=128,
                                                                encoder_dim=128)
        train = TrainConfig(epochs=1 if quick else args.epochs_ptb, batch_size=32, kl_cycles=4, free_bits=0.1,
                            keep_best=True)
    if (out / "model.safetensors").exists():
        print(f"reusing {out}")
        return vaekit.load(out)
    print(f"training {out} ...")
    return vaekit.train(data, out=out, train=train, overwrite=True, echo=lambda *a, **k: None, **options)


# --- coders ----------------------------------------------------------------------------------------

def general_purpose() -> dict:
    """name -> (compress, decompress) on bytes, at each tool's strongest setting."""
    import brotli
    import zstandard

    return {
        "gzip -9": (lambda b: gzip.compress(b, 9, mtime=0), gzip.decompress),
        "bz2 -9": (lambda b: bz2.compress(b, 9), bz2.decompress),
        "xz -9e": (lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "zstd -19": (lambda b: zstandard.ZstdCompressor(level=19).compress(b),
                     lambda b: zstandard.ZstdDecompressor().decompress(b)),
        "brotli -11": (lambda b: brotli.compress(b, quality=11), brotli.decompress),
    }


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def baselines(raw: bytes, units: int) -> dict:
    out = {}
    for name, (pack, unpack) in general_purpose().items():
        packed, t_c = timed(pack, raw)
        back, t_d = timed(unpack, packed)
        assert back == raw, name
        out[name] = {"bytes": len(packed), "bits_per_unit": 8 * len(packed) / units, "compress_s": t_c,
                     "decompress_s": t_d}
    return out


def image_formats(images: np.ndarray, binary: bool) -> dict:
    """PNG (optimised; 1-bit for binary images) and WebP lossless, one file per image, sizes summed."""
    from PIL import Image

    out = {}
    for name, save in (("PNG", lambda im, f: im.save(f, format="PNG", optimize=True)),
                       ("WebP lossless", lambda im, f: im.save(f, format="WEBP", lossless=True, quality=100,
                                                               method=6))):
        total, start = 0, time.perf_counter()
        for image in images:
            picture = Image.fromarray(image.astype(bool)) if binary and name == "PNG" else \
                Image.fromarray((image * 255).astype(np.uint8) if binary else image)
            buffer = io.BytesIO()
            save(picture, buffer)
            total += buffer.tell()
        out[name] = {"bytes": total, "bits_per_unit": 8 * total / images.size,
                     "compress_s": time.perf_counter() - start}
    return out


def vaekit_code(run, data, units: int, chains: int | None = None) -> dict:
    blob, t_c = timed(run.compress, data, chains)
    back, t_d = timed(run.decompress, blob)
    exact = bool(np.array_equal(back, data)) if isinstance(data, np.ndarray) else back == data
    return {"bytes": len(blob), "bits_per_unit": 8 * len(blob) / units, "compress_s": t_c, "decompress_s": t_d,
            "exact": exact, "run": str(run.path), "model": run.model.name, "chains": chains or "default"}


def neg_elbo_bits(run, data) -> float:
    """The run's mean -ELBO on the data in bits (at one posterior draw): what the code should approach."""
    import torch

    from vaekit.objectives import elbo_terms

    x = run.prepare(data)
    total = 0.0
    torch.manual_seed(0)
    with torch.no_grad():
        for i in range(0, len(x), 500):
            terms = elbo_terms(run.model, x[i:i + 500])
            total += float((terms.reconstruction + terms.kl_per_dim.sum(1)).sum())
    return total / np.log(2)


def main(argv=None) -> dict:
    args = parse_args(argv)
    report = {"machine": machine(), "quick": args.quick, "settings": {k: str(v) for k, v in vars(args).items()}}
    if {"binarized", "mnist8"} & set(args.only):
        images8, binary = mnist_test(args)
    if "binarized" in args.only:
        run = trained_run(args, "binarized")
        chains = args.chains or (64 if args.quick and hasattr(run.model, "pixel_logits") else None)
        figures = vaekit_code(run, binary, binary.size, chains)
        figures["neg_elbo_bpd"] = neg_elbo_bits(run, binary.astype(bool)) / binary.size  # bool: 0/1, not /255
        report["binarized_mnist_bpd"] = figures["bits_per_unit"]
        report["binarized_mnist"] = {"vaekit": figures, **baselines(binary.tobytes(), binary.size),
                                     **image_formats(binary, binary=True), "images": len(binary)}
        print_table("binarised MNIST (bits per pixel)", report["binarized_mnist"])
    if "mnist8" in args.only:
        run = trained_run(args, "mnist8")
        figures = vaekit_code(run, images8, images8.size, args.chains)
        figures["neg_elbo_bpd"] = neg_elbo_bits(run, images8) / images8.size
        report["mnist8_bpd"] = figures["bits_per_unit"]
        report["mnist8"] = {"vaekit": figures, **baselines(images8.tobytes(), images8.size),
                            **image_formats(images8, binary=False), "images": len(images8)}
        print_table("8-bit MNIST (bits per pixel)", report["mnist8"])
    if "ptb" in args.only:
        text = ptb_test(args)
        run = trained_run(args, "ptb")
        figures = vaekit_code(run, text, len(text), args.chains)
        report["ptb_bits_per_char"] = figures["bits_per_unit"]
        report["ptb"] = {"vaekit": figures, **baselines(text, len(text)), "bytes": len(text),
                         "lines": text.count(b"\n")}
        best = min(v["bytes"] for k, v in report["ptb"].items() if isinstance(v, dict) and k != "vaekit")
        report["ptb"]["vaekit_vs_best_general_purpose"] = figures["bytes"] / best
        print_table("PTB test (bits per character)", report["ptb"])
    if set(args.only) != {"binarized", "mnist8", "ptb"} and args.out.exists():  # --only: keep the other figures
        import json

        report = {**json.loads(args.out.read_text()), **report}
    write_results(args.out, report)
    return report


def print_table(title: str, figures: dict) -> None:
    print(f"\n{title}")
    for name, f in figures.items():
        if isinstance(f, dict):
            times = f"  compress {f['compress_s']:.2f} s" + (f", decompress {f['decompress_s']:.2f} s"
                                                             if "decompress_s" in f else "")
            print(f"  {name:14s} {f['bits_per_unit']:.4f}  ({f['bytes']:,} bytes){times}"
                  + (f"  exact={f['exact']}" if "exact" in f else ""))


if __name__ == "__main__":
    main()

"""Scale: training throughput on CPU in fp32 vs bf16 and in 1 vs 2 data-parallel processes, beside
the Keras peers, plus the mixed-precision numerics check and (when CUDA is present) a GPU section.

Every CPU configuration runs the product end to end in a fresh process: `vaekit train ... --nproc N`
(N = 2: DistributedDataParallel over gloo, batch_size the global batch, each process given
cores/N threads). Speeds come from the run's metrics.jsonl (training loop time of rank 0 only,
no validation or plots); steady-state figures leave out epoch 1.

- image: the design document's `seed` model and the default `conv`, MNIST, batch 128;
  the Keras peer (../shared/peers/keras_seed_image.py) trains `seed`'s architecture in the same run.
- text: the document's `text-seed` (the Keras text peer's architecture) and the default `text-rnn`
  on PTB, batch 32; words/s = tokens/s - sentences/s (vaekit's tokens count each <eos>; the
  peer counts words only).
- numerics: bench/image_throughput.py's fp32 and bf16 workers (seed model, same seed, MNIST
  train subset, test -ELBO on the 10k test images): the relative change must stay under 0.5%.
- GPU (only with CUDA): seed model, data on the device, large batches, bf16, with and without
  torch.compile (mode "reduce-overhead" = CUDA graphs); images/s and the device's name.

    python bench/scale.py --quick     # 3,200 images / 800 sentences, 2 epochs (the peers: 60k images)
    python bench/scale.py             # 60k MNIST / full PTB, 3 epochs, ELBO check on 60k x 5 epochs
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import image_throughput  # noqa: E402  (its peer runner, CPU-load measure, ELBO workers, machine facts)
import peers  # noqa: E402

RESULTS = peers.REPO / "bench" / "results"
IMAGE_MODELS, TEXT_MODELS = ("seed", "conv"), ("text-seed", "text-rnn")
PRECISIONS, NPROCS = ("fp32", "bf16"), (1, 2)
PART_KEYS = {"image": ("image", "image_peer"), "text": ("text", "text_peer"), "elbo": ("elbo_check",), "gpu": ("gpu",)}


# ---- one CPU configuration: the CLI in a fresh process ------------------------------------------
def vaekit_train(kind: str, model: str, precision: str, nproc: int, args) -> dict:
    """Train with `vaekit train KIND ... --nproc N`; figures from its metrics.jsonl."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        data = (["--data", "mnist", "--data-dir", str(args.data_dir), "--batch-size", "128"] if kind == "image"
                else ["--data", "ptb", "--val-data", "ptb:valid", "--data-dir", str(args.data_dir),
                      "--batch-size", "32"])
        limit = args.image_limit if kind == "image" else args.text_limit
        command = [sys.executable, "-m", "vaekit.cli", "train", kind, *data, "--model", model,
                   "--epochs", str(args.epochs), "--precision", precision, "--nproc", str(nproc),
                   "--out", str(out), "--no-progress", *(["--limit", str(limit)] if limit else [])]
        threads = max(1, (os.cpu_count() or 1) // nproc)
        env = {**os.environ, "PYTHONPATH": str(peers.REPO / "src"), "OMP_NUM_THREADS": str(threads)}
        done, busy = image_throughput.measured(lambda: subprocess.run(command, capture_output=True, text=True,
                                                                      env=env))
        if done.returncode != 0:
            return {"error": (done.stderr or done.stdout).strip()[-1500:]}
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steady = history[1:] or history
    seconds = sum(m["seconds"] for m in steady)
    examples = sum(m["examples_per_s"] * m["seconds"] for m in steady)
    result = {"steady_examples_per_s": examples / seconds, "epoch_seconds": [round(m["seconds"], 2) for m in history],
              "final_val_neg_elbo": history[-1].get("val_loss"), "background_cores": busy, "threads": threads}
    if kind == "text":
        tokens = sum(m["tokens_per_s"] * m["seconds"] for m in steady)
        result.update(tokens_per_s=tokens / seconds, words_per_s=(tokens - examples) / seconds)
    return result


def cpu_matrix(kind: str, models, args) -> dict:
    results = {}
    for model in models:
        for precision in PRECISIONS:
            for nproc in NPROCS:
                name = f"{model}/{precision}/{nproc}p"
                print(f"vaekit {kind} {name} ...", flush=True)
                results[name] = vaekit_train(kind, model, precision, nproc, args)
    return results


# ---- peers ------------------------------------------------------------------------------------
def image_peer(args) -> dict:
    try:
        python = peers.peer_python(args.peer_python)
    except RuntimeError as e:
        return {"error": str(e)}
    ns = argparse.Namespace(data_dir=args.data_dir, epochs=args.epochs)
    return image_throughput.peer_summary([image_throughput.run_peer(python, ns)], python)


def text_peer(args) -> dict:
    print(f"keras text peer: {args.text_peer_epochs} epoch(s) ...", flush=True)
    env = {"DATA": args.data_dir / "ptb", "EPOCHS": args.text_peer_epochs}
    if args.text_limit:
        env["LIMIT"] = args.text_limit
    figures, busy = image_throughput.measured(
        lambda: peers.run_peer("keras_seed_text.py", "keras-text", env, args.peer_python))
    return {**figures, "background_cores": busy}


# ---- numerics: fp32 vs bf16 on the same seed -------------------------------------------------
def elbo_check(args) -> dict:
    ns = argparse.Namespace(data_dir=args.data_dir, epochs=args.elbo_epochs, limit=args.elbo_limit)
    runs = {}
    # fp32 twice: CPU training is not bit-reproducible across processes (oneDNN's threaded
    # reductions), so the fp32-vs-fp32 change is the floor that the bf16 change is read against.
    for name, precision in (("fp32", "fp32"), ("bf16", "bf16"), ("fp32_repeat", "fp32")):
        print(f"ELBO check {name}: seed model, {args.elbo_epochs} epochs on {args.elbo_limit or 60000:,} "
              "images ...", flush=True)
        runs[name] = image_throughput.run_config(precision, ns)
    if any("error" in r for r in runs.values()):
        return {"runs": runs, "error": "a run failed"}
    fp32, bf16 = runs["fp32"]["test_neg_elbo"], runs["bf16"]["test_neg_elbo"]
    change = (bf16 - fp32) / fp32
    return {"fp32_test_neg_elbo": fp32, "bf16_test_neg_elbo": bf16, "relative_change": change,
            "within_0.5_percent": abs(change) <= 0.005,
            "fp32_repeat_relative_change": (runs["fp32_repeat"]["test_neg_elbo"] - fp32) / fp32, "runs": runs,
            "settings": {"model": "seed", "epochs": args.elbo_epochs, "train_images": args.elbo_limit or 60000,
                         "batch_size": image_throughput.BATCH, "seed": 42}}


# ---- GPU --------------------------------------------------------------------------------------
def gpu_section(args) -> dict:
    """Images/s of the seed model on CUDA: data on the device, large batches, bf16, compile modes."""
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device here"}
    from vaekit.models import build_model
    from vaekit.training import TrainConfig, Trainer

    train = image_throughput.mnist("train", args.data_dir)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "configs": {}}
    for batch in (1024, 8192):
        for compile_mode in (None, "default", "reduce-overhead"):
            name = f"b{batch}/bf16/{compile_mode or 'eager'}"
            config = TrainConfig(epochs=args.gpu_epochs, batch_size=batch, precision="bf16", device="cuda",
                                 progress=False)
            trainer = Trainer(build_model("seed"), config, train)
            if compile_mode:  # reduce-overhead replays the step's kernels as CUDA graphs
                trainer.forward = torch.compile(trainer.model, mode=compile_mode)
            try:
                history = trainer.fit()
            except Exception as e:  # one failing mode must not lose the others' figures
                results["configs"][name] = {"error": f"{type(e).__name__}: {e}"[:500]}
                continue
            steady = history[1:]
            results["configs"][name] = {
                "steady_img_per_s": len(train) * len(steady) / sum(m["seconds"] for m in steady),
                "epoch_seconds": [round(m["seconds"], 3) for m in history]}
            print(f"gpu {name}: {results['configs'][name]['steady_img_per_s']:,.0f} img/s", flush=True)
    return results


# ---- report -----------------------------------------------------------------------------------
def add_ratios(results: dict, peer_rate: float | None, key: str) -> None:
    for r in results.values():
        if "error" not in r:
            r["ratio_to_peer"] = r[key] / peer_rate if peer_rate else None


def print_report(report: dict) -> None:
    for kind, key, unit in (("image", "steady_examples_per_s", "img/s"), ("text", "words_per_s", "words/s")):
        peer = report[f"{kind}_peer"]
        peer_rate = peer.get("steady_img_per_s" if kind == "image" else "tokens_per_s")
        print(f"\n{kind:<22}{unit:>12}{'ratio':>8}{'val -ELBO':>11}{'busy':>6}  epoch s")
        for name, r in report[kind].items():
            if "error" in r:
                print(f"{name:<22} failed: {r['error'].splitlines()[-1]}")
                continue
            ratio = f"{r['ratio_to_peer']:.2f}" if r.get("ratio_to_peer") else "-"
            print(f"{name:<22}{r[key]:>12,.0f}{ratio:>8}{r['final_val_neg_elbo'] or 0:>11.2f}"
                  f"{r['background_cores']:>6.2f}  {r['epoch_seconds']}")
        print(f"{'keras peer':<22}{peer_rate or float('nan'):>12,.0f}" if peer_rate else
              f"keras peer: {str(peer.get('error', 'not run'))[-200:]}")
    e = report["elbo_check"]
    if "relative_change" in e:
        print(f"\nbf16 vs fp32 test -ELBO (seed, same seed): {e['bf16_test_neg_elbo']:.2f} vs "
              f"{e['fp32_test_neg_elbo']:.2f} ({100 * e['relative_change']:+.2f}%, limit 0.5%); "
              f"fp32 run again: {100 * e.get('fp32_repeat_relative_change', float('nan')):+.2f}%")
    print(f"gpu: {report['gpu'].get('skipped') or report['gpu'].get('device')}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small subsets, 2 epochs")
    p.add_argument("--data-dir", help="MNIST and PTB (default: $VAEKIT_DATA or ../shared/data)")
    p.add_argument("--peer-python", help="the peers' venv python (default: from ../shared/peers/setup.sh)")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--parts", nargs="+", default=["image", "text", "elbo", "gpu"],
                   choices=["image", "text", "elbo", "gpu"])
    p.add_argument("--text-limit", type=int, help="train on the first N PTB sentences (default: all; 800 with --quick)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    args.data_dir = peers.data_dir(args.data_dir)
    q = args.quick
    args.epochs = 2 if q else 3
    args.image_limit, args.text_limit = (3200, args.text_limit or 800) if q else (None, args.text_limit)
    args.text_peer_epochs = 1
    args.elbo_epochs, args.elbo_limit = (2, 6400) if q else (5, None)
    args.gpu_epochs = 3 if q else 5
    args.out = args.out or RESULTS / f"scale{'-quick' if q else ''}.json"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ["PYTHONPATH"] = str(peers.REPO / "src")  # every worker runs this checkout's vaekit
    report = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "machine": image_throughput.machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "image": {}, "text": {}, "image_peer": {}, "text_peer": {}, "elbo_check": {}, "gpu": {}}
    if "image" in args.parts:
        report["image_peer"] = {} if args.no_peer else image_peer(args)
        report["image"] = cpu_matrix("image", IMAGE_MODELS, args)
        add_ratios(report["image"], report["image_peer"].get("steady_img_per_s"), "steady_examples_per_s")
    if "text" in args.parts:
        report["text_peer"] = {} if args.no_peer else text_peer(args)
        report["text"] = cpu_matrix("text", TEXT_MODELS, args)
        add_ratios(report["text"], report["text_peer"].get("tokens_per_s"), "words_per_s")
    if "elbo" in args.parts:
        report["elbo_check"] = elbo_check(args)
    if "gpu" in args.parts:
        report["gpu"] = gpu_section(args)
    if args.out.exists():  # a run of some --parts keeps the other parts' earlier figures
        earlier = json.loads(args.out.read_text())
        for part, keys in PART_KEYS.items():
            if part not in args.parts:
                report.update({k: earlier.get(k, {}) for k in keys})
    print_report(report)
    peers.write_results(args.out, report)


if __name__ == "__main__":
    main()

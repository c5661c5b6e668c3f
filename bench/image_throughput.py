"""Training throughput of the design document's conv VAE on MNIST: vaekit vs the Keras peer.

For each configuration below, a fresh process trains the `seed` model with vaekit's own Trainer
(the product's code path: TensorData -> iterate_batches -> Trainer._step) on the 60k MNIST
training images (continuous [0, 1] targets, batch 128, Adam 1e-3, 5 epochs) with `vaekit train
image`'s training defaults (the image modality's train_defaults: the document's), then evaluates the negative ELBO
on the 10k test images with `Trainer.evaluate`. In the same run the Keras peer
(../shared/peers/keras_seed_image.py, its own virtual environment) trains the same architecture.

Steady-state images/s leave out epoch 1 (warm-up, compilation), as the peer's figure does;
ratio = our steady images/s / the peer's. The machine is shared: compare figures within one run.

    python bench/image_throughput.py                 # full: 5 epochs, with the peer (~7 minutes)
    python bench/image_throughput.py --peer-runs 2   # the peer before and after ours (as in RESULTS.md)
    python bench/image_throughput.py --quick         # 12,800 images x 2 epochs (the peer: 2 epochs)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import peers  # bench/peers.py: the peer runner, data folder and machine facts the benchmarks share

BATCH, LR = 128, 1e-3

# "+malloc": glibc keeps freed buffers of up to 32 MiB in its heap instead of unmapping them, so a
# step stops page-faulting its activations in afresh. Trainer now does this itself with mallopt
# (training.device.keep_freed_memory), so "+malloc" equals the plain config; kept to re-check that claim.
MALLOC_ENV = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"}

# name -> (TrainConfig overrides, extra environment); channels_last is TrainConfig's default (on).
CONFIGS = {  # the matrix run by default
    "fp32": ({"precision": "fp32"}, {}),
    "bf16": ({"precision": "bf16"}, {}),
}
# Only with --configs. torch.compile measured slower here (bf16: 20.7 vs 17.5 ms a step): the
# convolutions stay oneDNN calls, and its fused CPU kernels for the ReLU work also convert layouts.
EXTRA_CONFIGS = {
    "fp32+malloc": ({"precision": "fp32"}, MALLOC_ENV),
    "bf16+malloc": ({"precision": "bf16"}, MALLOC_ENV),
    # kernels/fused_conv.py switched off: the ordinary conv, bias and ReLU layers.
    "bf16-unfused": ({"precision": "bf16"}, {"VAEKIT_FUSED_CONV": "0"}),
    "bf16+compile": ({"precision": "bf16", "compile": True}, {}),
    # A KL warm-up over the first epoch (measured 2026-12-04, not the default).
    "bf16+warmup": ({"precision": "bf16", "kl_warmup_epochs": 1.0}, {}),
}
ALL_CONFIGS = {**CONFIGS, **EXTRA_CONFIGS}
REPORTED_SETTINGS = ("precision", "channels_last", "compile", "kl_warmup_epochs")  # in each result


def measured(run_child):
    """run_child() (which runs and waits for a subprocess), and the CPU cores other processes kept
    busy meanwhile: 0 means a quiet machine, 1 a whole core taken from the two we compare on."""
    busy, children, started = _cpu_busy_seconds(), _children_cpu_seconds(), time.perf_counter()
    result = run_child()
    others = (_cpu_busy_seconds() - busy) - (_children_cpu_seconds() - children)
    return result, round(max(0.0, others / (time.perf_counter() - started)), 2)


def _cpu_busy_seconds() -> float:
    with open("/proc/stat") as f:  # "cpu user nice system idle iowait irq softirq steal ..."
        ticks = [int(v) for v in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---- one configuration (runs in its own process) ---------------------------------------------
def mnist(split: str, data_dir: Path, limit: int | None = None):
    import torch

    from vaekit.data import TensorData
    from vaekit.data.sources import load_images

    images = load_images("mnist", split=split, data_dir=str(data_dir), download=False)
    x, y = torch.from_numpy(images.x), torch.from_numpy(images.y)
    return TensorData(x[:limit], y[:limit], "rescale")  # uint8 -> [0, 1] floats per batch


def train_one(name: str, data_dir: Path, epochs: int, limit: int | None, seed: int = 42) -> dict:
    """Train and evaluate one configuration; the figures as a dict."""
    import torch

    from vaekit.modalities import IMAGE
    from vaekit.models import build_model
    from vaekit.training import TrainConfig, Trainer

    overrides, env = ALL_CONFIGS[name]
    train, test = mnist("train", data_dir, limit), mnist("test", data_dir)
    config = TrainConfig(**{**IMAGE.train_defaults, "epochs": epochs, "batch_size": BATCH, "lr": LR, "progress": False,
                            "seed": seed, **overrides})
    trainer = Trainer(build_model("seed"), config, train)
    started = time.perf_counter()
    history = trainer.fit()
    train_seconds = time.perf_counter() - started
    test_metrics = trainer.evaluate(test)
    seconds = [m["seconds"] for m in history]
    return {
        "config": {k: v for k, v in vars(config).items() if k in REPORTED_SETTINGS},
        "name": name, "env": env, "seed": seed,
        "steady_img_per_s": len(train) * (len(seconds) - 1) / sum(seconds[1:]),
        "img_per_s": len(train) * len(seconds) / train_seconds,
        "epoch_seconds": [round(s, 2) for s in seconds],
        "train_loss_last_epoch": history[-1]["train_loss"],
        "test_neg_elbo": test_metrics["loss"],
        "test_rec": test_metrics["reconstruction"],
        "test_kl": test_metrics["kl"],
        "torch_threads": torch.get_num_threads(),
    }


def run_config(name: str, args, seed: int = 42) -> dict:
    """train_one in a fresh process: a clean allocator, thread pool and compile cache per config."""
    command = [sys.executable, __file__, "--worker", name, "--data-dir", str(args.data_dir),
               "--epochs", str(args.epochs), "--seed", str(seed)] + (["--limit", str(args.limit)] if args.limit else [])
    env = {**os.environ, **ALL_CONFIGS[name][1]}
    done, others = measured(lambda: subprocess.run(command, env=env, capture_output=True, text=True))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout).strip()[-2000:]}
    return {**json.loads(lines[-1][len("RESULT "):]), "background_cores": others}


# ---- the Keras peer -------------------------------------------------------------------------
def run_peer(python: str, args) -> dict:
    """One run of the Keras peer (always the full 60k images: it has no option for fewer)."""
    from vaekit.data import named

    images_path, _ = named.locate_files(named.DATASETS["mnist"], "train", args.data_dir, download=False)
    env = {"DATA": images_path.parent, "EPOCHS": args.epochs}
    print(f"keras peer: {args.epochs} epochs on 60,000 images ...", flush=True)
    figures, others = measured(lambda: peers.run_peer("keras_seed_image.py", "keras-image", env, python))
    return {**figures, "background_cores": others}


def peer_summary(runs: list[dict], python: str) -> dict:
    """The fastest run's speed (the conservative choice for our ratio); -ELBO averaged over runs."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[-1]["error"] if runs else "not run", "runs": runs}
    version = subprocess.run([python, "-c", "import tensorflow as tf; print(tf.__version__)"],
                             capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    mean = {k: sum(r[k] for r in ok) / len(ok) for k in ("test_neg_elbo", "test_rec", "test_kl")}
    return {"steady_img_per_s": max(r["steady_img_per_s"] for r in ok), **mean, "runs": runs,
            "median_test_neg_elbo": statistics.median(r["test_neg_elbo"] for r in ok),
            "python": python, "tensorflow": version.stdout.strip()}


# ---- report -----------------------------------------------------------------------------------
def machine() -> dict:
    """peers.machine() plus what decides conv speed here: the CPU generation, oneDNN, native bf16."""
    import torch

    with open("/proc/cpuinfo") as f:
        first_cpu = f.read().split("\n\n")[0].splitlines()
    info = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first_cpu if ":" in line)}
    onednn = next((line.strip(" -") for line in torch.__config__.show().splitlines() if "DNN" in line), "")
    return {**peers.machine(), "cpu_family_model": f"{info.get('cpu family')}/{info.get('model')}",
            "onednn": onednn, "bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}


def summarise(results: dict, peer: dict, args) -> dict:
    """The JSON report: the default configuration's figures up front, the best one's ratio."""
    from vaekit.training import TrainConfig

    peer_rate = peer.get("steady_img_per_s")
    ok = {n: r for n, r in results.items() if "error" not in r}
    for r in ok.values():
        r["ratio"] = r["steady_img_per_s"] / peer_rate if peer_rate else None
    default = next((n for n, r in ok.items() if not r["env"] and r["config"] == {
        "precision": TrainConfig.precision, "channels_last": TrainConfig.channels_last,
        "compile": TrainConfig.compile}), None)
    best = max(ok, key=lambda n: ok[n]["steady_img_per_s"], default=None)
    # The flat keys other tools read: the default configuration's, or the best one's when the
    # default was not run (`--configs bf16`); "flat_config" says which.
    flat = default if default in ok else best
    head = ok.get(flat, {})
    by_config = {}  # with --seeds: each configuration's medians over its seeds
    for r in ok.values():
        by_config.setdefault(r["name"], []).append(r)
    medians = {n: {"seeds": [r["seed"] for r in rs], "test_neg_elbo": [r["test_neg_elbo"] for r in rs],
                   "median_test_neg_elbo": statistics.median(r["test_neg_elbo"] for r in rs),
                   "median_steady_img_per_s": statistics.median(r["steady_img_per_s"] for r in rs)}
               for n, rs in by_config.items()}
    return {
        "default_config": default, "best_config": best, "flat_config": flat, "medians": medians,
        "steady_img_per_s": head.get("steady_img_per_s"), "peer_steady_img_per_s": peer_rate,
        "ratio": head.get("ratio"), "best_ratio": ok[best]["ratio"] if best else None,
        "test_neg_elbo": head.get("test_neg_elbo"), "peer_test_neg_elbo": peer.get("test_neg_elbo"),
        "best_test_neg_elbo": ok[best]["test_neg_elbo"] if best else None,
        "configs": results, "peer": peer, "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {"model": "seed", "train_images": args.limit or 60000, "test_images": 10000,
                     "epochs": args.epochs, "batch_size": BATCH, "lr": LR, "targets": "continuous [0, 1]",
                     "quick": args.quick, "command": " ".join(["python"] + sys.argv)},
    }


def print_report(report: dict) -> None:
    peer = report["peer"]
    print(f"\n{'config':<14}{'steady img/s':>14}{'ratio':>8}{'test -ELBO':>12}{'rec':>9}{'KL':>7}"
          f"{'busy':>6}  epoch s   (busy: cores other processes used meanwhile)")
    for name, r in report["configs"].items():
        if "error" in r:
            print(f"{name:<14} failed: {r['error'].splitlines()[-1] if r['error'] else '?'}")
            continue
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        print(f"{name:<14}{r['steady_img_per_s']:>14,.0f}{ratio:>8}{r['test_neg_elbo']:>12.2f}"
              f"{r['test_rec']:>9.2f}{r['test_kl']:>7.2f}{r['background_cores']:>6.2f}  {r['epoch_seconds']}")
    if "error" in peer:
        print(f"{'keras peer':<14} failed: {peer['error'].splitlines()[-1] if peer['error'] else '?'}")
    for i, r in enumerate(peer.get("runs", [])):
        if "error" not in r:
            print(f"{f'keras peer #{i + 1}':<14}{r['steady_img_per_s']:>14,.0f}{'':>8}{r['test_neg_elbo']:>12.2f}"
                  f"{r['test_rec']:>9.2f}{r['test_kl']:>7.2f}{r['background_cores']:>6.2f}")
    for name, m in report["medians"].items():
        print(f"{name}: median over seeds {m['seeds']}: {m['median_steady_img_per_s']:,.0f} img/s, "
              f"test -ELBO {m['median_test_neg_elbo']:.2f} (all: {', '.join(f'{v:.1f}' for v in m['test_neg_elbo'])})")
    if peer.get("runs"):
        print(f"keras peer: median test -ELBO {peer['median_test_neg_elbo']:.2f} over {len(peer['runs'])} runs")
    print(f"\ndefault config ({report['default_config']}): ratio {report['ratio'] or float('nan'):.2f}; "
          f"best ({report['best_config']}): ratio {report['best_ratio'] or float('nan'):.2f}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", help="folder with MNIST's IDX .gz files, in it or in its mnist/ "
                                      "(default: $VAEKIT_DATA or ../shared/data)")
    p.add_argument("--quick", action="store_true", help="12,800 training images, 2 epochs")
    p.add_argument("--epochs", type=int, help="default 5 (2 with --quick); at least 2")
    p.add_argument("--configs", nargs="+", choices=list(ALL_CONFIGS), default=list(CONFIGS),
                   help=f"default: {' '.join(CONFIGS)}")
    p.add_argument("--peer-python", help="the peer venv's python (default: from ../shared/peers/setup.sh)")
    p.add_argument("--no-peer", action="store_true", help="skip the Keras peer")
    p.add_argument("--peer-runs", type=int, default=1,
                   help="runs of the peer, split before and after ours; its fastest counts (default 1)")
    p.add_argument("--out", type=Path, help="JSON report (default bench/results/image_throughput[-quick].json)")
    p.add_argument("--seeds", type=int, nargs="+", default=[42],
                   help="training seeds per configuration; the report adds medians (single runs vary by tens of nats)")
    p.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)  # the worker's
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one config, print RESULT json
    p.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data_dir = peers.data_dir(args.data_dir)
    args.epochs = args.epochs or (2 if args.quick else 5)
    args.limit = args.limit or (12800 if args.quick else None)
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the steady-state rate leaves out epoch 1")
    if args.peer_runs < 1:
        p.error("--peer-runs must be at least 1 (use --no-peer to skip the peer)")
    suffix = "-quick" if args.quick else ""
    args.out = args.out or peers.REPO / "bench" / "results" / f"image_throughput{suffix}.json"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(train_one(args.worker, args.data_dir, args.epochs, args.limit, args.seed)))
        return
    mnist("test", args.data_dir)  # fail early, with vaekit's message, if the data is not there
    peer, python, peer_runs = {}, None, 0
    if not args.no_peer:
        try:
            python, peer_runs = peers.peer_python(args.peer_python), args.peer_runs
        except RuntimeError as e:
            peer = {"error": str(e)}
    runs, results = [], {}
    for _ in range(peer_runs - peer_runs // 2):  # the peer before ours, and after when run twice+
        runs.append(run_peer(python, args))
    for seed in args.seeds:
        for name in args.configs:
            key = name if len(args.seeds) == 1 else f"{name} seed={seed}"
            print(f"vaekit {key}: {args.epochs} epochs on {args.limit or 60000:,} images ...", flush=True)
            results[key] = run_config(name, args, seed)
    for _ in range(peer_runs // 2):
        runs.append(run_peer(python, args))
    report = summarise(results, peer_summary(runs, python) if python else peer, args)
    print_report(report)
    peers.write_results(args.out, report)


if __name__ == "__main__":
    main()

"""Where one training step of the document's image model (`seed`, MNIST size, batch 128) spends its time.

image_throughput.py measures images/s against the Keras peer; this splits vaekit's step so that the
next attempt at that goal starts from figures instead of the profiler's impressions (which inflate
the element-wise work several-fold on these CPUs). In one process, through Trainer._step:
- the step at batch 128, and at batch 2: what a step costs whatever its size (Python, autograd,
  dispatch, oneDNN set-up, Adam) -- the part that no faster kernel removes;
- the step's three phases: forward + loss, backward, optimizer;
and, in a child process with oneDNN's verbose log on for a few steps, the execution time of each
oneDNN primitive (the convolutions and matmuls): what the kernels take, the rest being PyTorch's own
element-wise work and overhead. Synthetic data: speed does not depend on the pixel values here.

    python bench/image_step.py            # 200 timed steps per figure
    python bench/image_step.py --quick    # 40
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REPO, machine, write_results  # noqa: E402

RESULTS = REPO / "bench" / "results" / "image_step.json"
BATCH = 128


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="40 timed steps per figure instead of 200")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--verbose-steps", type=int, default=3, help=argparse.SUPPRESS)  # the child's mode
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def trainer(args):
    import torch

    from vaekit.data import TensorData
    from vaekit.models import build_model
    from vaekit.training import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("seed", image_shape=(1, 28, 28))
    config = TrainConfig(precision=args.precision, epochs=1, batch_size=BATCH, progress=False)
    return Trainer(model, config, TensorData(torch.rand(BATCH, 1, 28, 28)), None, None)


def median_ms(fn, steps: int) -> float:
    for _ in range(max(5, steps // 10)):  # warm-up: oneDNN primitives created, allocator settled
        fn()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def phases(t, x, steps: int) -> dict:
    """Forward + loss, backward, optimizer step: medians over `steps` steps, ms."""
    from vaekit.objectives import training_loss
    from vaekit.training import autocast_context

    laps = []
    for i in range(steps + 10):
        a = time.perf_counter()
        with autocast_context(t.device, t.config.precision):
            terms = t.forward(x)
        loss = training_loss(terms, 1.0, 0.0)
        b = time.perf_counter()
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        c = time.perf_counter()
        t.optimizer.step()
        d = time.perf_counter()
        if i >= 10:
            laps.append((b - a, c - b, d - c))
    return {name: round(statistics.median(lap[k] for lap in laps) * 1000, 2)
            for k, name in enumerate(("forward_ms", "backward_ms", "optimizer_ms"))}


def child(args) -> None:
    """A few steps with oneDNN's verbose log on (it writes to this process's stdout)."""
    import torch

    t = trainer(args)
    x = torch.rand(BATCH, 1, 28, 28)
    for _ in range(20):
        t._step(x, 1.0)
    print("STEPS-START", flush=True)
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        for _ in range(args.verbose_steps):
            t._step(x, 1.0)


def onednn_primitives(args) -> list[dict]:
    """oneDNN's execution times for one step: [{kind, pass, shape, ms}], the median over the steps."""
    cmd = [sys.executable, __file__, "--child", "--precision", args.precision, "--threads", str(args.threads),
           "--verbose-steps", str(args.verbose_steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.split("STEPS-START", 1)[1].splitlines() if ",primitive,exec," in line]
    if not lines or len(lines) % args.verbose_steps:
        raise SystemExit(f"oneDNN's verbose log did not give {args.verbose_steps} equal steps ({len(lines)} lines)")
    per_step = len(lines) // args.verbose_steps
    rows = []
    for i in range(per_step):
        fields = [lines[s * per_step + i].split(",") for s in range(args.verbose_steps)]
        f = fields[0]  # onednn_verbose,v1,primitive,exec,cpu,KIND,IMPL,PROP,MEMORY,ATTR,AUX,SHAPE,MS
        rows.append({"kind": f[5], "impl": f[6], "pass": f[7], "shape": f[-2],
                     "ms": round(statistics.median(float(g[-1]) for g in fields), 3)})
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        child(args)
        return {}
    import torch

    steps = 40 if args.quick else 200
    t = trainer(args)
    x128, x2 = torch.rand(BATCH, 1, 28, 28), torch.rand(2, 1, 28, 28)
    step_ms = median_ms(lambda: t._step(x128, 1.0), steps)
    fixed_ms = median_ms(lambda: t._step(x2, 1.0), steps)
    split = phases(t, x128.contiguous(memory_format=t.memory_format), steps)
    prims = onednn_primitives(args)
    onednn_ms = round(sum(r["ms"] for r in prims if r["kind"] != "reorder"), 2)
    reorder_ms = round(sum(r["ms"] for r in prims if r["kind"] == "reorder"), 2)
    report = {
        "machine": machine(), "precision": args.precision, "threads": args.threads, "quick": args.quick,
        "step_ms": step_ms, "img_per_s": round(BATCH / step_ms * 1000), "fixed_ms_at_batch_2": fixed_ms, **split,
        "onednn_kernels_ms": onednn_ms, "onednn_reorders_ms": reorder_ms,
        "rest_ms": round(step_ms - onednn_ms - reorder_ms, 2),
        "primitives": [r for r in prims if r["kind"] != "reorder"],
    }
    print(f"step {step_ms} ms ({report['img_per_s']} img/s); at batch 2: {fixed_ms} ms")
    print(f"forward {split['forward_ms']} ms, backward {split['backward_ms']} ms, optimizer {split['optimizer_ms']} ms")
    print(f"oneDNN kernels {onednn_ms} ms + reorders {reorder_ms} ms; everything else {report['rest_ms']} ms")
    for r in report["primitives"]:
        shape = re.sub(r"(dh0|dw0|ph1|pw1)", "", r["shape"])
        print(f"  {r['ms']:7.3f} ms  {r['kind']:<13} {r['pass']:<16} {shape}")
    write_results(RESULTS, report)
    return report


if __name__ == "__main__":
    main()

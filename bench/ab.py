"""Interleaved A/B timing of two code paths inside one process, for the step benchmarks.

On a shared machine the speed drifts over tens of seconds, so the paths alternate within each
repeat (their order flipping every repeat) and the ratio of each repeat's pair is reported beside
the ratio of the medians.
"""
from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable


def step_parser(description: str, repeats: int, n: int, threads: list[int]) -> argparse.ArgumentParser:
    """The options every step benchmark takes (a text batch: gru_step.make_batch)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--n", type=int, default=n, help="steps per timing")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=50, help="T, the padded sentence length")
    p.add_argument("--vocab", type=int, default=10_002)
    p.add_argument("--threads", type=int, nargs="+", default=threads)
    return p


def interleaved(module, name: str, paths: dict, measure: Callable[[int], float], repeats: int, n: int,
                warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each path, `repeats` times, where a path is what `module.name` is set to
    (restored afterwards); `measure(k)` times k steps. Each path is warmed up first."""
    original = getattr(module, name)
    times = {label: [] for label in paths}
    try:
        for path in paths.values():
            setattr(module, name, path)
            measure(warmup)
        for rep in range(repeats):
            for label in (list(paths) if rep % 2 == 0 else list(paths)[::-1]):
                setattr(module, name, paths[label])
                times[label].append(measure(n))
    finally:
        setattr(module, name, original)
    return times


def compare(times: dict[str, list[float]], ref: str, new: str) -> dict:
    """Medians (seconds), their ratio ref/new, and the median and range of the paired ratios."""
    a, b = statistics.median(times[ref]), statistics.median(times[new])
    pairs = sorted(x / y for x, y in zip(times[ref], times[new]))
    return {"ref_s": a, "new_s": b, "speedup": a / b, "paired_speedup_median": statistics.median(pairs),
            "paired_speedup_range": [pairs[0], pairs[-1]],
            "all_ms": {k: [round(1000 * t, 2) for t in v] for k, v in times.items()}}


def describe(result: dict) -> str:
    low, high = result["paired_speedup_range"]
    return (f"-> {result['speedup']:.2f}x (paired median {result['paired_speedup_median']:.2f}x, "
            f"range {low:.2f}-{high:.2f})")

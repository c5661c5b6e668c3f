"""Fault figures: SIGKILL a real training at random moments and resume it, then feed the readers a
corpus of hostile files. Prints and writes bench/results/faults.json (faults-quick.json with --quick):

    kills_tried / kills_survived   SIGKILLs sent to a running `vaekit train`/`vaekit resume`, and how
                                   many the run survived: every file intact afterwards, the resume
                                   started at the last complete checkpoint, and the final model is
                                   bit-identical to an uninterrupted run with the same seed
    corrupt_checkpoints            files of the run found unreadable after a kill (must be 0)
    bad_inputs_tried / _handled    crafted hostile inputs, and how many ended in a result or one
                                   VaekitError (never another exception)
    resume_seconds                 median time from starting `vaekit resume` until it trains again
                                   (process start, imports, data, checkpoint load)

Usage: python bench/faults.py [--quick] [--rounds R] [--kills K] [--seed S]
The training is tiny (digits, the design document's conv model, 3 epochs, one thread), so the run
takes a few minutes even on a busy 2-core machine.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from peers import write_results  # noqa: E402

from tests.faultlib import crafted_inputs, kill_resume_loop, reference_run, try_case  # noqa: E402


def kill_figures(work: Path, rounds: int, kills: int, seed: int, epochs: int) -> dict:
    reference = work / "reference"
    started = time.monotonic()
    reference_run(reference, epochs=epochs)
    uninterrupted = time.monotonic() - started
    tried = survived = 0
    corrupt, resume, identical = [], [], []
    for r in range(rounds):
        report = kill_resume_loop(work / f"run-{r}", kills=kills, seed=seed + r, reference=reference, epochs=epochs)
        print(f"round {r + 1}: {report.kills_survived}/{report.kills_tried} kills survived, resumed at "
              f"(checkpoint step, resumed step) {report.resumed_at}, identical to uninterrupted: {report.identical}"
              + (f", corrupt: {report.corrupt}" if report.corrupt else "") + "".join(f"\n  {x}" for x in report.log))
        tried += report.kills_tried
        survived += report.kills_survived
        corrupt += report.corrupt
        resume += report.resume_seconds
        identical.append(report.identical)
    return {"kills_tried": tried, "kills_survived": survived, "corrupt_checkpoints": len(corrupt),
            "resume_seconds": round(statistics.median(resume), 2) if resume else None,
            "resume_seconds_all": [round(s, 2) for s in resume], "final_model_identical": all(identical),
            "uninterrupted_seconds": round(uninterrupted, 2)}


def input_figures(work: Path) -> dict:
    cases = crafted_inputs(work / "corpus")
    results = [(case.name, *try_case(case)) for case in cases]
    bad = [(name, what) for name, ok, what in results if not ok]
    for name, what in bad:
        print(f"  NOT handled: {name}: {what}")
    pwned = (work / "corpus" / "PWNED").exists()
    return {"bad_inputs_tried": len(results), "bad_inputs_handled": len(results) - len(bad) - pwned,
            "pickle_payload_ran": pwned}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of 3 kills")
    parser.add_argument("--rounds", type=int, help="separate runs to kill (default 2; quick 1)")
    parser.add_argument("--kills", type=int, help="kills per run (default 4; quick 3)")
    parser.add_argument("--seed", type=int, default=20261121, help="seeds the kill moments")
    parser.add_argument("--epochs", type=int, default=3, help="of 45 steps each (enough for every kill to land)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 2)
    kills = args.kills or (3 if args.quick else 4)
    with tempfile.TemporaryDirectory(prefix="vaekit-faults-") as tmp:
        figures = {**kill_figures(Path(tmp), rounds, kills, args.seed, args.epochs), **input_figures(Path(tmp))}
    figures.update(rounds=rounds, kills_per_round=kills, seed=args.seed, epochs=args.epochs, quick=args.quick,
                   date=time.strftime("%Y-%m-%d"), machine=f"{platform.processor() or platform.machine()}, "
                   f"{__import__('os').cpu_count()} cores", python=platform.python_version(),
                   torch=__import__("torch").__version__)
    print(f"kills survived / tried:        {figures['kills_survived']} / {figures['kills_tried']}")
    print(f"checkpoints found corrupt:     {figures['corrupt_checkpoints']}")
    print(f"bad inputs handled / tried:    {figures['bad_inputs_handled']} / {figures['bad_inputs_tried']}")
    print(f"time to resume (median):       {figures['resume_seconds']} s "
          f"(uninterrupted run: {figures['uninterrupted_seconds']} s)")
    out = ROOT / "bench" / "results" / ("faults-quick.json" if args.quick else "faults.json")
    write_results(out, figures)


if __name__ == "__main__":
    main()

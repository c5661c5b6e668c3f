"""Fault figures (issue 30): SIGKILL every kind of run at random moments and resume it, kill the
verbs that read a run while they write, then feed every reader and verb a generated corpus of bad
inputs. Prints and writes bench/results/faults.json (faults-quick.json with --quick):

    kills_tried / kills_survived   SIGKILLs sent, and how many were survived: for a training (image,
                                   text, tabular, refine, --nproc 2 with rank 1 or the launcher
                                   killed) every file intact afterwards, each resume started at the
                                   last complete checkpoint (so no step beyond it was lost), no worker
                                   left running, and the final weights bit-identical to an
                                   uninterrupted run with the same seed; for a verb (evaluate,
                                   anomalies, embed, export) no file unreadable, no report that looks
                                   complete with a part missing, and a rerun that works
    corrupt_checkpoints            files found unreadable after a kill (must be 0)
    lost_steps                     resumes that started elsewhere than the last checkpoint (must be 0)
    kinds_killed                   per kind: [kills tried, survived]
    bad_inputs_tried / _handled    generated bad inputs (tests/fuzzlib.py), and how many ended in a
                                   result, one VaekitError or a clean CLI exit within the time limit
                                   with no file of the user's changed; memory is capped (RLIMIT_AS)
    resume_seconds                 median time from starting `vaekit resume` until it trains again

Usage: python bench/faults.py [--quick] [--seed S] [--only KIND ...]
Full: ~52 kills and ~730 inputs (about 25 minutes on a loaded 2-core machine); quick: one kill of
each kind and ~220 inputs. The figures are rewritten after each kind, so a run cut short still
leaves what it measured (marked "partial").
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from peers import write_results  # noqa: E402

from tests.faultlib import kill_job, kill_resume_loop, kill_verb, reference_for, write_corpus  # noqa: E402

# kind -> (rounds, kills per round) at full size; --quick: one round of one kill each.
TRAININGS = {"image": (2, 4), "text": (2, 4), "tabular": (2, 4), "refine": (2, 3), "nproc-rank1": (1, 3),
             "nproc-launcher": (1, 3)}
VERBS = {"evaluate": 4, "anomalies": 4, "embed": 4, "export": 4}


def kill_trainings(work: Path, kinds: list[str], quick: bool, seed: int, figures: dict, save) -> None:
    corpus = write_corpus(work / "corpus.txt")
    source = reference_for("image", work / "source")  # what refine refines
    references: dict[str, Path] = {}
    for kind in kinds:
        data = {"text": corpus, "refine": source}.get(kind)
        family = kind.split("-")[0]  # both --nproc kinds share one uninterrupted --nproc 2 run
        if family not in references:
            references[family] = reference_for(kind, work / f"{family}-reference", data)
        reference = references[family]
        rounds, kills = (1, 1) if quick else TRAININGS[kind]
        tried = survived = 0
        for r in range(rounds):
            out = work / f"{kind}-{r}"
            report = kill_resume_loop(out, kills=kills, seed=seed + r, reference=reference,
                                      job=kill_job(kind, out, reference, data), timeout=300)
            print(f"{kind} round {r + 1}: {report.kills_survived}/{report.kills_tried} survived, resumed at "
                  f"(checkpoint step, resumed step) {report.resumed_at}, identical: {report.identical}"
                  + (f", corrupt: {report.corrupt}" if report.corrupt else "")
                  + (f", orphans: {report.orphans}" if report.orphans else "")
                  + "".join(f"\n  {x[:300]}" for x in report.log), flush=True)
            tried += report.kills_tried
            survived += report.kills_survived
            figures["corrupt_checkpoints"] += len(report.corrupt)
            figures["lost_steps"] += sum(a != b for a, b in report.resumed_at)
            figures["orphans"] += len(report.orphans)
            figures["resume_seconds_all"] += [round(s, 2) for s in report.resume_seconds]
            figures["final_model_identical"] &= report.identical
        figures["kinds_killed"][kind] = [tried, survived]
        save()


def kill_verbs(work: Path, verbs: list[str], quick: bool, seed: int, figures: dict, save) -> None:
    run = reference_for("image", work / "verbs-run")
    for verb in verbs:
        tried = survived = 0
        for i in range(1 if quick else VERBS[verb]):
            result = kill_verb(verb, run, work / f"{verb}-{i}", seed=seed + i, jitter=0.5 + i * 0.5)
            print(f"{verb} {i + 1}: killed {result.killed}, problems {result.problems}, rerun ok {result.rerun_ok}"
                  + (" (with --overwrite, as its message said)" if result.rerun_needed_overwrite else "")
                  + ("" if result.rerun_ok else f"\n  {result.log[-500:]}"), flush=True)
            tried += result.killed
            survived += result.killed and not result.problems and result.rerun_ok
            figures["corrupt_checkpoints"] += len(result.problems)
        figures["kinds_killed"][verb] = [tried, survived]
        save()


def bad_inputs(work: Path, quick: bool, seed: int, figures: dict, save) -> None:
    from tests.fuzzlib import generated_inputs, make_templates, run_cases

    templates = make_templates(work / "templates")
    cases = generated_inputs(work / "inputs", templates, seed=seed, scale=0.3 if quick else 1.0)
    # Memory bounded: 3 GiB above what this process holds now; a case that wants more fails with
    # MemoryError (counted as not handled) instead of taking the machine's memory.
    held = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (held + 3 * 2**30, resource.RLIM_INFINITY))
    report = run_cases(cases, work / "inputs", limit=60)
    for name, what in report.failures:
        print(f"  NOT handled: {name}: {what}")
    figures.update(bad_inputs_tried=report.tried, bad_inputs_handled=report.handled - bool(report.files_changed),
                   bad_input_hangs=report.hangs, user_files_changed=len(report.files_changed),
                   bad_inputs_by_family={k: list(v) for k, v in report.families.items()},
                   bad_inputs_seconds=round(report.seconds, 1))
    save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one kill of each kind, ~220 inputs")
    parser.add_argument("--seed", type=int, default=20261206, help="seeds the kill moments and the inputs")
    parser.add_argument("--only", nargs="+", help="kinds to run (image text ... evaluate ... inputs)")
    args = parser.parse_args()
    everything = [*TRAININGS, *VERBS, "inputs"]
    chosen = args.only or everything
    out = ROOT / "bench" / "results" / ("faults-quick.json" if args.quick else "faults.json")
    figures = {"kills_tried": 0, "kills_survived": 0, "corrupt_checkpoints": 0, "lost_steps": 0, "orphans": 0,
               "kinds_killed": {}, "final_model_identical": True, "resume_seconds_all": [],
               "bad_inputs_tried": 0, "bad_inputs_handled": 0, "partial": True, "quick": args.quick,
               "seed": args.seed, "date": time.strftime("%Y-%m-%d %H:%M"),
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"load average at start {os.getloadavg()[0]:.1f}",
               "python": platform.python_version(), "torch": __import__("torch").__version__}
    started = time.monotonic()

    def save() -> None:
        figures["kills_tried"] = sum(t for t, _ in figures["kinds_killed"].values())
        figures["kills_survived"] = sum(s for _, s in figures["kinds_killed"].values())
        resume = figures["resume_seconds_all"]
        figures["resume_seconds"] = round(statistics.median(resume), 2) if resume else None
        figures["seconds"] = round(time.monotonic() - started)
        write_results(out, figures)

    with tempfile.TemporaryDirectory(prefix="vaekit-faults-") as tmp:
        work = Path(tmp)
        kill_trainings(work, [k for k in TRAININGS if k in chosen], args.quick, args.seed, figures, save)
        kill_verbs(work, [v for v in VERBS if v in chosen], args.quick, args.seed, figures, save)
        if "inputs" in chosen:
            bad_inputs(work, args.quick, args.seed, figures, save)
    figures["partial"] = chosen != everything
    figures["load_average_at_end"] = round(os.getloadavg()[0], 1)
    save()
    print(f"kills survived / tried:        {figures['kills_survived']} / {figures['kills_tried']} "
          f"over {len(figures['kinds_killed'])} kinds")
    print(f"files found corrupt:           {figures['corrupt_checkpoints']}; resumes not at the last checkpoint: "
          f"{figures['lost_steps']}; workers left running: {figures['orphans']}")
    print(f"bad inputs handled / tried:    {figures['bad_inputs_handled']} / {figures['bad_inputs_tried']}")
    print(f"time to resume (median):       {figures['resume_seconds']} s")


if __name__ == "__main__":
    main()

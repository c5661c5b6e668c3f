"""Variations of Penn Treebank test sentences: vaekit's text VAEs beside the Keras peer's model.

For N test sentences (drawn with --seed among those of 5-30 words), every model writes K
variations: codes drawn around the sentence's posterior, z = mean + spread * std * eps, each decoded
greedily (vaekit: `Run.vary`; the peer: bench/keras_text_variations.py around
../shared/peers/keras_seed_text.py, unchanged). Each model's variations are scored with
`vaekit.text_quality.variation_metrics` (definitions printed below the table): BLEU to the input,
self-BLEU and distinct-1/2 among the variations, semantic consistency (cosine of all-MiniLM-L6-v2
sentence embeddings, from the offline package of `vaekit[text-eval]`), changed and novel shares
(novel: not a PTB training sentence). Goal (issue 4): better BLEU-to-input than the peer at equal or
better (lower) self-BLEU, and higher semantic consistency.

    python bench/text_variations.py --runs runs/ptb-rnn runs/ptb-seed   # already trained vaekit PTB runs
    python bench/text_variations.py --quick    # trains text-seed and text-rnn and the peer on 4,000
                                               # sentences for 1 epoch each, 30 inputs (a few minutes)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REPO, SHARED, data_dir, machine, run_peer, write_results  # noqa: E402
from text_ptb import peer_max_len  # noqa: E402

RESULTS = REPO / "bench" / "results" / "text_variations.json"
PEER_WRAPPER = Path(__file__).resolve().parent / "keras_text_variations.py"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="*", default=[], help="trained vaekit text runs (PTB) to compare")
    p.add_argument("--quick", action="store_true", help="train small runs: 4,000 sentences, 1 epoch, 30 inputs")
    p.add_argument("--train-models", nargs="*", default=["text-seed", "text-rnn"],
                   help="models trained when no --runs are given")
    p.add_argument("--epochs", type=int, default=3, help="epochs for runs trained here and for the peer")
    p.add_argument("--limit", type=int, help="training sentences for runs trained here and the peer")
    p.add_argument("--inputs", type=int, default=100, help="test sentences to vary")
    p.add_argument("--variations", type=int, default=5)
    p.add_argument("--spread", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="folder holding ptb/ (default: $VAEKIT_DATA or ../shared/data)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for vaekit")
    p.add_argument("--embedder", default="auto", help="'auto' (packaged all-MiniLM-L6-v2) or 'none'")
    p.add_argument("--work", help="keep the runs trained here in this folder (default: a temporary one)")
    p.add_argument("--out", default=str(RESULTS), help="the JSON results file")
    p.add_argument("--peer-python")
    p.add_argument("--no-peer", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.limit, args.inputs = 1, args.limit or 4000, min(args.inputs, 30)
    args.ptb_root = data_dir(args.data_dir)
    args.ptb = args.ptb_root / "ptb" if (args.ptb_root / "ptb").is_dir() else args.ptb_root
    return args


def choose_inputs(ptb: Path, n: int, seed: int) -> list[str]:
    sentences = [s.strip() for s in (ptb / "ptb.test.txt").read_text().splitlines() if 5 <= len(s.split()) <= 30]
    return [sentences[i] for i in sorted(np.random.default_rng(seed).choice(len(sentences), n, replace=False))]


def train_run(model: str, args, out: Path, max_len: int) -> dict:
    """A vaekit PTB run trained into `out` with text_ptb.py's settings; returns its facts."""
    import vaekit
    from vaekit.modalities.text import TextDataConfig
    from vaekit.tokenizer import TokenizerConfig
    from vaekit.training import TrainConfig

    data = TextDataConfig("ptb", val_data="ptb:valid", data_dir=str(args.ptb_root), max_len=max_len,
                          limit=args.limit)
    overrides = {}
    if model == "text-rnn":  # as bench/text_ptb.py trains the default model
        steps_per_epoch = math.ceil((args.limit or 42068) / 32)
        overrides = {"free_bits": 0.25, "kl_warmup_steps": 2 * steps_per_epoch, "grad_clip": 5.0}
    train = TrainConfig(epochs=args.epochs, batch_size=32, threads=args.threads, progress=False, **overrides)
    started = time.perf_counter()
    vaekit.train(data, out, model, train, echo=lambda *a: None, tokenizer=TokenizerConfig(max_vocab=None))
    return {"path": str(out), "trained_here": True, "train_seconds": time.perf_counter() - started,
            "epochs": args.epochs, "limit": args.limit}


def vaekit_variations(path: str, inputs: list[str], args) -> list[list[str]]:
    import torch

    import vaekit

    torch.set_num_threads(args.threads)
    run = vaekit.load(path)
    return [run.vary(s, args.variations, args.spread, seed=args.seed + i) for i, s in enumerate(inputs)]


def peer_variations(inputs: list[str], args, work: Path) -> tuple[list[list[str]] | None, dict]:
    request, answer = work / "peer_request.json", work / "peer_variations.json"
    request.write_text(json.dumps({"sentences": inputs, "k": args.variations, "spread": args.spread,
                                   "seed": args.seed}))
    env = {"DATA": args.ptb, "EPOCHS": args.epochs, "PEER_DIR": SHARED / "peers", "VARY_IN": request,
           "VARY_OUT": answer, **({"LIMIT": args.limit} if args.limit else {})}
    facts = run_peer(str(PEER_WRAPPER), "keras-vary", env, args.peer_python)
    if "error" in facts or not answer.exists():
        return None, facts
    return json.loads(answer.read_text())["variations"], facts


def main(argv=None) -> None:
    from vaekit.text_quality import DEFINITIONS, variation_metrics

    args = parse_args(argv)
    inputs = choose_inputs(args.ptb, args.inputs, args.seed)
    train_sentences = set((args.ptb / "ptb.train.txt").read_text().splitlines())
    embedder = None if args.embedder == "none" else args.embedder
    report = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k not in ("peer_python",)},
              "machine": machine(), "definitions": DEFINITIONS, "models": {}}
    report["settings"]["command"] = " ".join(["python bench/text_variations.py", *(argv or sys.argv[1:])])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = {Path(p).name: {"path": p, "trained_here": False} for p in args.runs}
        if not runs:
            max_len = peer_max_len(args.ptb) + 1
            for model in args.train_models:
                print(f"training vaekit {model}: {args.epochs} epoch(s), {args.limit or 'all'} sentences ...",
                      flush=True)
                runs[model] = train_run(model, args, work / model, max_len)
        outputs = {}
        for name, facts in runs.items():
            started = time.perf_counter()
            outputs[f"vaekit {name}"] = vaekit_variations(facts["path"], inputs, args)
            report["models"][f"vaekit {name}"] = {**facts, "vary_seconds": time.perf_counter() - started}
        if not args.no_peer:
            print(f"keras peer: {args.epochs} epoch(s), {args.limit or 'all'} sentences, then variations ...",
                  flush=True)
            variations, facts = peer_variations(inputs, args, work)
            report["models"]["keras peer"] = {k: v for k, v in facts.items() if k != "stdout_tail"}
            if variations is None:
                print(f"keras peer failed: {facts.get('error', '')[-500:]}")
            else:
                outputs["keras peer"] = variations
    for name, variations in outputs.items():
        metrics = variation_metrics(inputs, variations, train_sentences, embedder=embedder)
        report["models"][name].update(metrics=metrics, examples=[
            {"input": inputs[i], "variations": variations[i]} for i in range(min(3, len(inputs)))])
    print_report(report, inputs)
    out = Path(args.out)
    write_results(out, report)


COLUMNS = [("bleu_to_input", "BLEU-in", ".1f"), ("self_bleu", "self-BLEU", ".1f"), ("distinct_1", "dist-1", ".3f"),
           ("distinct_2", "dist-2", ".3f"), ("semantic_consistency", "semantic", ".3f"),
           ("changed_share", "changed", ".2f"), ("novel_share", "novel", ".2f"), ("empty_share", "empty", ".2f")]


def print_report(report: dict, inputs: list[str]) -> None:
    s = report["settings"]
    print(f"\n{len(inputs)} PTB test sentences x {s['variations']} variations, spread {s['spread']}, greedy decoding")
    print(f"{'':<20}" + "".join(f"{title:>11}" for _, title, _ in COLUMNS))
    for name, facts in report["models"].items():
        m = facts.get("metrics")
        if m:
            print(f"{name:<20}" + "".join(f"{'-' if m[k] is None else format(m[k], f):>11}" for k, _, f in COLUMNS))
    model = next((f for f in report["models"].values() if "metrics" in f), None)
    if model:
        print(f"semantic model: {model['metrics']['semantic_model']}")
    for name, facts in report["models"].items():
        for example in facts.get("examples", [])[:1]:
            print(f"\n{name}\n  input: {example['input']}")
            for v in example["variations"][:3]:
                print(f"    -> {v}")


if __name__ == "__main__":
    main()

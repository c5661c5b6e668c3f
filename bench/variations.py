"""Variations of held-out sentences (issue 25): meaning kept, wording changed, fluent.

Per corpus (the embedded corpus's held-out split, Penn Treebank test), N held-out inputs of 5-30 words
(drawn with --seed), K variations each, from:
- `default`: vaekit's `vary` with its default settings on the given run (`Run.vary`: the sentence edited
  under codes near its own, vaekit.editing, change 0.3);
- `eda`: the rule-based baseline (bench/eda.py, Wei & Zou 2019, alpha 0.1; WordNet synonyms as in the
  paper, and the MiniLM-neighbour stand-in scored beside it as `eda_minilm`);
- `at_eda_bleu`: vaekit with --change set so that its BLEU to the input equals EDA's (interpolated on
  the curve, then measured there);
- `decode`: the same run, each code decoded from scratch (`vary --method decode`: spread 2, greedy with
  repetition control, the default before editing);
- `curve`: vaekit over --changes (the fidelity knob), for the fidelity-diversity plot;
- any --extra run (e.g. one trained with the former defaults), decoded as vary did before issue 25
  (spread 1, greedy, no repetition control);
- `keras_peer` (PTB, with --peer): the design document's Keras model (../shared/peers/keras_seed_text.py,
  unchanged, through bench/keras_text_variations.py in the peers' venv), trained --peer-epochs on PTB
  in the same run, codes mean + std * eps decoded position-wise.
Figures (vaekit.text_quality plus two here): semantic (MiniLM cosine to the input), bleu_in, self_bleu,
distinct_2, copy_rate (variations equal to the input after normalisation), unk_share (share of output
words that are <unk>), fluency_ratio = perplexity of the variations / perplexity of the real held-out
sentences, both under a Kneser-Ney trigram model fitted on the corpus's training split (bench/reference_lm.py).

    python bench/variations.py --runs docs=runs/docs ptb=runs/ptb --extra docs:old=runs/docs-old
    python bench/variations.py --quick --runs docs=runs/docs ptb=runs/ptb   # 40 inputs, changes 0.1, 0.3, 0.5
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REPO, data_dir, machine  # noqa: E402

RESULTS = REPO / "bench" / "results" / "variations.json"
PLOT = REPO / "bench" / "results" / "variations_curve.png"
FIGURES = ("semantic", "bleu_in", "self_bleu", "distinct_2", "copy_rate", "unk_share", "fluency_ratio")


def parse_args(argv=None):
    from eda import SOURCES

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", default=[], help="CORPUS=RUN for each corpus: docs, ptb")
    p.add_argument("--merge", nargs="+", metavar="FILE",
                   help="instead of measuring: the corpora of earlier results files (one corpus per run of "
                        "this bench, e.g. side by side) into --out, the plot redrawn")
    p.add_argument("--extra", nargs="*", default=[], help="CORPUS:LABEL=RUN, other runs to score alike")
    p.add_argument("--quick", action="store_true", help="40 inputs per corpus, changes 0.1, 0.3, 0.5")
    p.add_argument("--inputs", type=int, default=200, help="held-out inputs per corpus (0: all of 5-30 words)")
    p.add_argument("--variations", type=int, default=5)
    p.add_argument("--changes", type=float, nargs="*", default=[0.1, 0.2, 0.3, 0.5, 1.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--delete", action="store_true", help="every vaekit edit of this run with `vary --delete`")
    p.add_argument("--only-changes", action="store_true",
                   help="only EDA and vaekit at --changes on these inputs (no default, decode or peer rows)")
    p.add_argument("--data-dir", help="folder holding ptb/ (default: $VAEKIT_DATA or ../shared/data)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--workers", type=int, default=1,
                   help="processes editing inputs side by side (each with --threads; the same variations)")
    p.add_argument("--curve-from", nargs="+", default=[], metavar="FILE",
                   help="take each corpus's curve from an earlier results file instead of measuring "
                        "--changes here (the full held-out sets: only the default and EDA's BLEU are edited)")
    p.add_argument("--eda-synonyms", choices=SOURCES, default="wordnet",
                   help="EDA's synonym source for the `eda` row (the other is scored as eda_<name>); "
                        "wordnet is the paper's (bench/eda.py)")
    p.add_argument("--peer", action="store_true", help="also the Keras peer on PTB (bash ../shared/peers/setup.sh)")
    p.add_argument("--peer-only", action="store_true",
                   help="only the Keras peer (PTB), for --merge into a file measured without it")
    p.add_argument("--peer-epochs", type=int, default=3)
    p.add_argument("--peer-limit", type=int, help="PTB training sentences for the peer (default: all)")
    p.add_argument("--peer-python", help="the peers' venv python (default: as bench/peers.py finds it)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--plot", default=str(PLOT))
    args = p.parse_args(argv)
    if not args.runs and not args.merge:
        p.error("--runs (or --merge) is required")
    if args.quick:
        args.inputs, args.changes = min(args.inputs, 40), [0.1, 0.3, 0.5]
    return args


# ---- corpora: (training sentences, held-out sentences) -------------------------------------------
def corpus_splits(name: str, root: Path) -> tuple[list[str], list[str]]:
    """The training split and held-out split exactly as `vaekit train text` makes them."""
    from vaekit.modalities.text import TextDataConfig, read_texts

    if name == "ptb":
        config = TextDataConfig(data="ptb", data_dir=str(root))
        return read_texts("ptb", config), read_texts("ptb:test", config)
    config = TextDataConfig()  # the embedded corpus, the document's 20 % split with seed 42
    sentences = read_texts(config.data, config)
    order = np.random.default_rng(config.split_seed).permutation(len(sentences))
    n_val = int(round(len(sentences) * config.val_fraction))
    return [sentences[i] for i in order[n_val:]], [sentences[i] for i in order[:n_val]]


def pick_inputs(held_out: list[str], n: int, seed: int) -> list[str]:
    """n held-out sentences of 5-30 words, drawn with `seed`, in held-out order (n 0: all of them)."""
    candidates = [s for s in held_out if 5 <= len(s.split()) <= 30]
    if n == 0:
        return candidates
    rng = np.random.default_rng(seed)
    return [candidates[i] for i in sorted(rng.choice(len(candidates), min(n, len(candidates)), replace=False))]


# ---- systems --------------------------------------------------------------------------------------
def vary_batch(run, inputs: list[str], k: int, spread: float, seed: int, config=None) -> list[list[str]]:
    """Codes mean + spread * std * eps for every input at once, decoded (`vary --method decode`)."""
    import torch

    from vaekit.variations import default_decode_config

    torch.manual_seed(seed)
    mean, log_var = run.encode(inputs, return_log_var=True)  # (N, D) each
    mean, std = torch.from_numpy(mean), torch.from_numpy(log_var).mul(0.5).exp()
    z = mean.repeat_interleave(k, 0) + spread * std.repeat_interleave(k, 0) * torch.randn(len(inputs) * k,
                                                                                           mean.shape[1])
    texts = run.decode(z, config or default_decode_config())
    return [texts[i * k:(i + 1) * k] for i in range(len(inputs))]


def vary_edited(run, inputs: list[str], k: int, change: float | None, seed: int,
                workers: int = 1, threads: int = 1, delete: bool = False) -> list[list[str]]:
    """`Run.vary` on each input (change None: vary's default EditConfig; delete: `vary --delete`), seeded
    per input, so that `workers` processes (each loading the run, `threads` torch threads) give the same
    variations."""
    if workers > 1 and len(inputs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        chunks = [(i, inputs[i:i + 25]) for i in range(0, len(inputs), 25)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(str(run.path), threads)) as pool:
            parts = pool.map(_worker_vary, *zip(*[(start, chunk, k, change, seed, delete) for start, chunk in chunks]))
            return [v for part in parts for v in part]
    return _vary_chunk(run, 0, inputs, k, change, seed, delete)


def _vary_chunk(run, start: int, inputs: list[str], k: int, change: float | None, seed: int,
                delete: bool = False) -> list[list[str]]:
    from vaekit.editing import EditConfig

    if delete:
        change = EditConfig().change if change is None else change
    config = None if change is None else EditConfig(change=change, delete=delete)
    return [run.vary(s, n=k, seed=seed + start + i, config=config) for i, s in enumerate(inputs)]


_WORKER_RUN = None


def _worker_init(path: str, threads: int) -> None:
    import torch

    from vaekit import api

    global _WORKER_RUN
    torch.set_num_threads(threads)
    _WORKER_RUN = api.load(path)


def _worker_vary(start, inputs, k, change, seed, delete):
    return _vary_chunk(_WORKER_RUN, start, inputs, k, change, seed, delete)


def score(inputs, variations, lm, real_ppl) -> dict:
    from vaekit.text_quality import normalize_13a, variation_metrics

    m = variation_metrics(inputs, variations, embedder="auto")
    flat = [normalize_13a(v) for g in variations for v in g]
    words = [w for v in flat for w in v.split()]
    return {"semantic": m["semantic_consistency"], "bleu_in": m["bleu_to_input"], "self_bleu": m["self_bleu"],
            "distinct_2": m["distinct_2"], "copy_rate": 1 - m["changed_share"],
            "unk_share": sum(w == "<unk>" for w in words) / max(1, len(words)),
            "fluency_ratio": lm.perplexity([v for g in variations for v in g]) / real_ppl,
            "examples": [[inputs[i], variations[i]] for i in range(min(3, len(inputs)))]}


def change_at_bleu(curve: list[dict], target: float) -> float:
    """The change where the curve's BLEU to the input crosses `target` (linear in between)."""
    points = sorted((c["bleu_in"], c["change"]) for c in curve)
    bleus, changes = [b for b, _ in points], [c for _, c in points]
    return float(np.interp(target, bleus, changes))


def corpus_figures(name: str, run_path: str, extras: dict, args) -> dict:
    from eda import eda_variations
    from reference_lm import KneserNeyLM

    from vaekit import api
    from vaekit.generate import DecodeConfig
    from vaekit.variations import DEFAULT_CHANGE, default_decode_config

    train, held_out = corpus_splits(name, args.ptb_root)
    inputs = pick_inputs(held_out, args.inputs, args.seed)
    t0 = time.time()
    lm = KneserNeyLM().fit(train)
    real_ppl = lm.perplexity(held_out)
    from vaekit import stamps

    out = {"n_inputs": len(inputs), "variations_per_input": args.variations, "run": run_path,
           "run_stamp": stamps.of_run(run_path),  # the weights measured: curve points of separate runs join on it
           "reference_lm": {"model": "interpolated Kneser-Ney trigram, D 0.75, words seen once -> <unk>",
                            "held_out_perplexity": real_ppl, "fit_seconds": round(time.time() - t0, 1)}}
    print(f"[{name}] reference LM: held-out perplexity {real_ppl:.1f}", flush=True)
    if args.peer_only:
        return {**out, "keras_peer": keras_peer(inputs, args, lm, real_ppl)}
    for source, synonyms in args.synonyms.items():  # the chosen source first: the `eda` row
        eda = [eda_variations(s, args.variations, synonyms, random.Random(args.seed + i))
               for i, s in enumerate(inputs)]
        out["eda" if source == args.eda_synonyms else f"eda_{source}"] = {"synonyms": source,
                                                                          **score(inputs, eda, lm, real_ppl)}
    run = api.load(run_path)

    def timed(make):
        t = time.time()
        variations = make()
        return {**score(inputs, variations, lm, real_ppl), "seconds_per_input": (time.time() - t) / len(inputs)}

    edit = lambda change: timed(lambda: vary_edited(run, inputs, args.variations, change, args.seed,
                                                    args.workers, args.threads, args.delete))
    out["delete"] = args.delete
    if args.only_changes:  # points on the curve alone, e.g. to place EDA's BLEU on every input
        out["curve"] = [{"change": c, **edit(c)} for c in sorted(set(args.changes))]
        return out
    out["default"] = {"change": DEFAULT_CHANGE, **edit(None)}
    print(f"[{name}] default: {out['default']['semantic']:.3f} semantic", flush=True)
    out["decode"] = {"spread": 2.0, "decoding": "greedy, repetition control",
                     **timed(lambda: vary_batch(run, inputs, args.variations, 2.0, args.seed, default_decode_config()))}
    if args.curve_from:
        # The curve measured earlier (on fewer inputs) places EDA's BLEU; both points this file reports
        # for vaekit (the default and at EDA's BLEU) are measured here, on these inputs.
        out["curve"], out["curve_from"] = earlier_curve(name, args.curve_from)
    else:
        out["curve"] = [{"change": c, **(out["default"] if c == DEFAULT_CHANGE else edit(c))}
                        for c in sorted(set(args.changes) | {DEFAULT_CHANGE})]
    change = change_at_bleu(out["curve"], out["eda"]["bleu_in"])
    bleus = [c["bleu_in"] for c in out["curve"]]
    out["at_eda_bleu"] = {"change": change, "eda_bleu_within_curve": min(bleus) <= out["eda"]["bleu_in"] <= max(bleus),
                          **edit(change)}
    if args.peer and name == "ptb":
        out["keras_peer"] = keras_peer(inputs, args, lm, real_ppl)
    for label, path in extras.items():
        # Scored as vary worked before issue 25: spread 1, greedy, no repetition control.
        out[label] = {"run": path, "spread": 1.0, "decoding": "greedy, no repetition control",
                      **score(inputs, vary_batch(api.load(path), inputs, args.variations, 1.0, args.seed,
                                                 DecodeConfig()), lm, real_ppl)}
    return out


def earlier_curve(corpus: str, files: list[str]) -> tuple[list[dict], dict]:
    """`corpus`'s curve from the first of `files` (earlier results of this bench) that has one, and
    where it came from."""
    for f in files:
        earlier = json.loads(Path(f).read_text())["corpora"].get(corpus)
        if earlier and earlier.get("curve"):
            return earlier["curve"], {"file": f, "n_inputs": earlier["n_inputs"], "run": earlier.get("run")}
    raise SystemExit(f"none of {', '.join(files)} has a curve for {corpus}")


def keras_peer(inputs: list[str], args, lm, real_ppl) -> dict:
    """The Keras peer's variations of the same inputs (trained here), scored alike; or why not."""
    import tempfile

    from text_variations import peer_variations

    settings = argparse.Namespace(ptb=args.ptb_root / "ptb", variations=args.variations, spread=1.0, seed=args.seed,
                                  epochs=args.peer_epochs, limit=args.peer_limit, peer_python=args.peer_python)
    with tempfile.TemporaryDirectory() as work:
        variations, facts = peer_variations(inputs, settings, Path(work))
    if variations is None:
        return {"error": facts.get("error", "no variations")[-500:]}
    return {"epochs": args.peer_epochs, "limit": args.peer_limit, "train_seconds": facts.get("train_seconds"),
            **score(inputs, variations, lm, real_ppl)}


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for corpus, r in results["corpora"].items():
        if "curve" not in r:  # --peer-only
            continue
        xs = [c["self_bleu"] for c in r["curve"]]
        ys = [c["semantic"] for c in r["curve"]]
        borrowed = f" ({r['curve_from']['n_inputs']} inputs)" if "curve_from" in r else ""
        (line,) = ax.plot(xs, ys, "o-", label=f"{corpus}: vaekit vary over --change{borrowed}")
        if borrowed:  # the points measured on this file's inputs
            for key, mark in (("default", "D"), ("at_eda_bleu", "v")):
                ax.plot(r[key]["self_bleu"], r[key]["semantic"], mark, color=line.get_color(), ms=6,
                        label=f"{corpus}: vary, {key.replace('_', ' ')} ({r['n_inputs']} inputs)")
        for c in r["curve"]:
            ax.annotate(f"{c['change']:g}", (c["self_bleu"], c["semantic"]), fontsize=7)
        if "decode" in r:  # not with --only-changes
            ax.plot(r["decode"]["self_bleu"], r["decode"]["semantic"], "s", color=line.get_color(), ms=6,
                    label=f"{corpus}: vary --method decode")
        for key, mark in (("eda", "x"), ("eda_minilm", "+"), ("eda_wordnet", "+")):
            if key in r:
                source = r[key].get("synonyms", "minilm")  # files before WordNet had only MiniLM's
                ax.plot(r[key]["self_bleu"], r[key]["semantic"], mark, color=line.get_color(), ms=9,
                        label=f"{corpus}: EDA, {source} synonyms")
    ax.set_xlabel("self-BLEU among an input's variations (lower = more diverse)")
    ax.set_ylabel("semantic consistency (MiniLM cosine)")
    ax.set_title("Fidelity against diversity (labels: --change)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_table(results: dict) -> None:
    print(f"{'corpus':8}{'system':22}" + "".join(f"{f:>14}" for f in FIGURES))
    for corpus, r in results["corpora"].items():
        for system, row in r.items():
            if isinstance(row, dict) and "semantic" in row:
                print(f"{corpus:8}{system:22}" + "".join(f"{row[f]:>14.3f}" for f in FIGURES))
        for row in r.get("curve", []):
            label = f"change {row['change']:g}"
            print(f"{corpus:8}{label:22}" + "".join(f"{row[f]:>14.3f}" for f in FIGURES))


def at_bleu_from_curve(curve: list[dict], target: float) -> dict | None:
    """Every figure at BLEU to the input `target`, linear between the two measured curve points that
    bracket it (None when none do): the knob set at EDA's BLEU, read between measured points."""
    points = sorted(curve, key=lambda c: c["bleu_in"])
    for lo, hi in zip(points, points[1:]):
        if lo["bleu_in"] <= target <= hi["bleu_in"]:
            w = (target - lo["bleu_in"]) / ((hi["bleu_in"] - lo["bleu_in"]) or 1.0)
            row = {f: lo[f] + w * (hi[f] - lo[f]) for f in (*FIGURES, "change") if f in lo and f in hi}
            return {**row, "interpolated_between_changes": [lo["change"], hi["change"]]}
    return None


def add_summaries(results: dict) -> None:
    """The issue's layout: one top-level key per corpus with the default's figures, EDA's under `eda` and
    vaekit's at EDA's BLEU under `at_eda_bleu`. A corpus measured as curve points alone (--only-changes,
    merged) takes its default from the curve's point at the default change, and the figures at EDA's BLEU
    between the two points that bracket it."""
    from vaekit.variations import DEFAULT_CHANGE

    pick = lambda row: {f: row[f] for f in (*FIGURES, "change", "eda_bleu_within_curve",
                                            "interpolated_between_changes") if f in row}
    for corpus, r in results["corpora"].items():
        default = r.get("default") or next((c for c in r.get("curve", []) if c["change"] == DEFAULT_CHANGE), None)
        if default is None or "eda" not in r:  # --peer-only, or a curve without the default change
            continue
        at_eda = r.get("at_eda_bleu") or at_bleu_from_curve(r["curve"], r["eda"]["bleu_in"])
        if at_eda is None:
            continue
        results[corpus] = {**pick(default), "eda": pick(r["eda"]), "at_eda_bleu": pick(at_eda)}


def measured_on(rows: dict) -> tuple:
    """A corpus's weights (their SHA-256; the run's path for files older than the stamp) and inputs."""
    return rows.get("run_stamp", {}).get("weights_sha256") or rows["run"], rows["n_inputs"]


def merge(files: list[str], out: str, plot_path: str) -> None:
    """One results file holding the corpora of several (a later file's corpus replaces an earlier's)."""
    parts = [json.loads(Path(f).read_text()) for f in files]
    results = {"merged_from": {f: {"date": r["date"], "command": r["command"], "seconds": r.get("seconds")}
                               for f, r in zip(files, parts)},
               "machine": parts[-1]["machine"], "corpora": {}}
    for r in parts:  # a later file's rows replace an earlier one's of the same name, the rest stay
        for corpus, rows in r["corpora"].items():
            merged = results["corpora"].setdefault(corpus, {})
            curve = merged.get("curve")
            if curve and rows.get("curve") and measured_on(merged) == measured_on(rows):
                # Points of the same weights on the same inputs, measured in separate runs of this bench: one curve.
                by_change = {c["change"]: c for c in curve} | {c["change"]: c for c in rows["curve"]}
                rows = {**rows, "curve": [by_change[c] for c in sorted(by_change)]}
            merged.update(rows)
        results.update({c: r[c] for c in r["corpora"] if c in r})
    add_summaries(results)  # from the merged rows (e.g. curve points measured in separate runs)
    Path(out).write_text(json.dumps(results, indent=1) + "\n")
    plot(results, plot_path)
    print_table(results)
    print(f"wrote {out} and {plot_path}")


def main(argv=None) -> None:
    import torch
    from eda import SOURCES, synonym_source

    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, args.plot)
    torch.set_num_threads(args.threads)
    args.ptb_root = data_dir(args.data_dir)
    args.synonyms = {s: synonym_source(s) for s in sorted(SOURCES, key=lambda s: s != args.eda_synonyms)}
    runs = dict(r.split("=", 1) for r in args.runs)
    extras: dict[str, dict] = {}
    for e in args.extra:
        key, path = e.split("=", 1)
        corpus, label = key.split(":", 1)
        extras.setdefault(corpus, {})[label] = path
    t0 = time.time()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "quick": args.quick,
               "command": "python bench/variations.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "corpora": {c: corpus_figures(c, path, extras.get(c, {}), args) for c, path in runs.items()}}
    results["seconds"] = round(time.time() - t0)
    add_summaries(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.plot)
    print_table(results)
    print(f"wrote {args.out} and {args.plot} ({results['seconds']} s)")


if __name__ == "__main__":
    main()

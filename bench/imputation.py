"""Missing values in tables: how well vaekit fills them, at each candidate latent size, beside the imputers
people use, on the same masks in the same run. The pre-registered rule in bench/RESULTS.md ("imputation: how
the tables' latent size is chosen for missing values") chooses the tabular default latent size from the
selection tables alone; the test tables are for the record.

Protocol:
- MCAR masks: each cell removed independently with probability --rate (0.2); a row left with no observed cell
  gets one random cell back; one mask per seed (0, 1, 2: np.random.default_rng(seed)), the same for every method.
- Metric: RMSE over the removed cells, each cell's error divided by its column's standard deviation over the
  complete table (ddof 0), so every column counts alike whatever its units. Per table: the RMSE for each seed,
  their mean, and the ratio to mean imputation's RMSE (the mean over the seeds of each seed's ratio).
- vaekit: vaekit.VAE(kind="tabular", latent_dim=L, epochs=50, batch_size=64, random_state=seed) fitted on the
  table with its gaps (as a user would; the estimator holds out 20 % of the rows for its threshold), then
  impute(k=100, random_state=0). Candidates: L = 2 (the default the rules began from), 4 and half the
  features (rounded down, at least 2), named vaekit-latent2, vaekit-latent4, vaekit-half.
- Baselines, given the same table with NaN: mean (SimpleImputer), knn (KNNImputer, 5 neighbours), mice
  (IterativeImputer with BayesianRidge, 10 rounds) and missforest (IterativeImputer with ExtraTreesRegressor,
  50 trees, 5 rounds). Seconds per method are recorded, not a speed claim (one thread, a shared machine).
- Tables: selection (scikit-learn's bundled wine, breast_cancer, diabetes and iris, features only) and test
  (the ten ADBench sets in ../shared/data/adbench, features only, all rows; over 10,000 rows subsampled to
  10,000 with seed 0, stratified by label exactly as bench/anomaly.py does, so the same rows). Columns constant
  on the complete table are dropped first (the JSON names them).
- Rule (bench/RESULTS.md): the candidate with the lowest mean ratio over the selection tables becomes the
  default if it beats vaekit-latent2 by at least 0.02 of that mean ratio; else the default stays. "rule" in the
  JSON applies it to what the run has; "as_registered" says whether the run's settings are the registered ones.

    python bench/imputation.py --quick                  # wine and iris, 1 seed, 5 epochs, k 10 (seconds)
    python bench/imputation.py --quick --sets test      # the first 2 ADBench sets, 1,000 rows each
    python bench/imputation.py --sets selection         # the rule's tables, full protocol
    python bench/imputation.py                          # selection and test tables (long on a CPU)
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ADBENCH_MAX_ROWS, TABLE_SETS  # noqa: E402
from peers import REPO, data_dir, machine, write_results  # noqa: E402

RESULTS = REPO / "bench" / "results" / "imputation.json"
SELECTION_SETS = ("wine", "breast_cancer", "diabetes", "iris")
BASELINES = ("mean", "knn", "mice", "missforest")
CANDIDATES = ("2", "4", "half")  # vaekit latent sizes: a number, or "half" (half the features, at least 2)
# The default the rules compared against (latent 2); the third rule made half the columns the default
# (bench/RESULTS.md, "imputation"), with at least 2,000 steps (the --min-steps default).
DEFAULT = "vaekit-latent2"
MARGIN = 0.02  # how much lower a candidate's mean selection ratio must be to replace the default
REGISTERED = {"rate": 0.2, "seeds": 3, "epochs": 50, "min_steps": 0, "k": 100, "batch_size": 64,
              "candidates": list(CANDIDATES)}


# ---- tables ------------------------------------------------------------------------------------------------------
def load(name: str, args) -> tuple[np.ndarray, dict]:
    """The complete table (rows, features) as float64, constant columns dropped, and facts about it."""
    if name in SELECTION_SETS:
        from sklearn import datasets

        x = getattr(datasets, f"load_{name}")().data.astype(np.float64)
        facts = {"group": "selection", "source": f"sklearn.datasets.load_{name}"}
    else:
        with np.load(data_dir(args.data_dir) / "adbench" / f"{name}.npz", allow_pickle=False) as f:
            x, y = f["X"].astype(np.float64), f["y"].astype(bool)
        facts = {"group": "test", "source": f"adbench/{name}.npz", "rows_original": int(len(x))}
        if len(x) > args.max_rows:  # as bench/anomaly.py's read_table: stratified by label, seed 0 (same rows)
            from sklearn.model_selection import train_test_split

            keep, _ = train_test_split(np.arange(len(x)), train_size=args.max_rows, stratify=y, random_state=0)
            x = x[np.sort(keep)]
    # A constant column has no spread to scale the error by, and vaekit refuses one (drop_constant aside);
    # 26_optdigits has two.
    constant = np.flatnonzero(x.std(0) == 0)
    x = np.delete(x, constant, axis=1)
    return x, {**facts, "rows": int(len(x)), "features": int(x.shape[1]), "dropped_constant": constant.tolist()}


def mcar_mask(shape: tuple[int, int], rate: float, seed: int) -> np.ndarray:
    """True where a cell is removed: each independently with probability `rate`; a row left with none
    observed gets one random cell back (vaekit refuses a row with no value, and so would the protocol)."""
    rng = np.random.default_rng(seed)
    missing = rng.random(shape) < rate
    for i in np.flatnonzero(missing.all(1)):
        missing[i, rng.integers(shape[1])] = False
    return missing


def rmse(filled: np.ndarray, x: np.ndarray, missing: np.ndarray, sd: np.ndarray) -> float:
    """Over the removed cells, each cell's error in its column's standard deviation (complete table)."""
    return float(np.sqrt(np.mean((((filled - x) / sd)[missing]) ** 2)))


# ---- methods -----------------------------------------------------------------------------------------------------
def latent_size(spec: str, features: int) -> int:
    return max(2, features // 2) if spec == "half" else int(spec)


def vaekit_name(spec: str) -> str:
    return "vaekit-half" if spec == "half" else f"vaekit-latent{spec}"


def vaekit_impute(gaps: np.ndarray, latent: int, args, seed: int) -> tuple[np.ndarray, str | None]:
    """Fit on the table with its gaps, then fill them. Returns the filled table and a note when vaekit
    needed more than the plain call."""
    import vaekit
    from vaekit.errors import VaekitError

    # min_steps as the product counts it (TrainConfig.min_steps: more epochs on a small table; 0: exactly epochs)
    options = dict(kind="tabular", latent_dim=latent, epochs=args.epochs, batch_size=64, random_state=seed,
                   train_options={"min_steps": args.min_steps})
    try:
        vae = vaekit.VAE(**options).fit(gaps)
        note = None
    except VaekitError as e:
        # A column with few values other than its mode (26_optdigits) can be constant on the observed cells of
        # the estimator's training rows. A user told so passes drop_constant=True; such a column comes back
        # with its gaps, which get the column's observed mean (its one value on the training rows), and the
        # JSON says so.
        if "constant" not in str(e):
            raise
        vae = vaekit.VAE(**options, drop_constant=True).fit(gaps)
        note = f"refused ({e}); refitted with drop_constant=True"
    filled = vae.impute(gaps, k=args.k, random_state=0)
    left = np.isnan(filled)
    if note is not None and left.any():
        filled = np.where(left, np.nanmean(gaps, 0), filled)
        note += f"; {int(left.sum())} cell(s) of left-out column(s) filled with the column's observed mean"
    return filled, note


def baseline_impute(method: str, gaps: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (makes IterativeImputer importable)
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
    from sklearn.linear_model import BayesianRidge

    if method == "mean":
        return SimpleImputer(strategy="mean").fit_transform(gaps)
    if method == "knn":
        # KNNImputer measures distances in raw units, where the widest column would decide the neighbours;
        # to be fair it gets the table scaled by each column's observed mean and standard deviation (all it
        # can know), and its fills are mapped back to raw units.
        mu, sd = np.nanmean(gaps, 0), np.nanstd(gaps, 0)
        sd = np.where(sd > 0, sd, 1.0)
        filled = KNNImputer(n_neighbors=5).fit_transform((gaps - mu) / sd) * sd + mu
        return np.where(np.isnan(gaps), filled, gaps)  # observed cells exactly as given, not round-tripped
    if method == "mice":
        return IterativeImputer(estimator=BayesianRidge(), max_iter=10, random_state=seed).fit_transform(gaps)
    if method == "missforest":
        trees = ExtraTreesRegressor(n_estimators=50, random_state=seed, n_jobs=1)
        return IterativeImputer(estimator=trees, max_iter=5, random_state=seed).fit_transform(gaps)
    raise ValueError(method)


def run_method(method: str, gaps: np.ndarray, args, seed: int) -> tuple[np.ndarray, str | None, list[str]]:
    """The filled table, a note, and the warnings raised while filling (kept: they are findings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method.startswith("vaekit-"):
            spec = method.removeprefix("vaekit-").removeprefix("latent")
            filled, note = vaekit_impute(gaps, latent_size(spec, gaps.shape[1]), args, seed)
        else:
            filled, note = baseline_impute(method, gaps, seed), None
    return filled, note, sorted({f"{w.category.__name__}: {str(w.message)[:300]}" for w in caught})


# ---- one table ---------------------------------------------------------------------------------------------------
def table(name: str, args) -> dict:
    x, facts = load(name, args)
    sd = x.std(0)
    features = x.shape[1]
    # Candidates whose latent size coincides (half the features = 2 or 4) are reported under each name but
    # fitted once: the same call with the same seed.
    sizes = {vaekit_name(s): latent_size(s, features) for s in args.latent_dims}
    first = {}
    for method, size in sizes.items():
        first.setdefault(size, method)
    methods = ["mean", *BASELINES[1:], *sizes]  # mean first: every other method's line gives its ratio to it
    masks = [mcar_mask(x.shape, args.rate, seed) for seed in range(args.seeds)]
    out = {**facts, "latent_sizes": sizes, "missing_cells": [int(m.sum()) for m in masks], "rmse": {},
           "rmse_per_seed": {}, "ratio_to_mean": {}, "ratio_to_mean_per_seed": {}, "seconds": {}}
    notes, caught, nonfinite, same_as = {}, {}, {}, {}
    for method in methods:
        if method in sizes and first[sizes[method]] != method:
            same_as[method] = first[sizes[method]]
            for key in ("rmse", "rmse_per_seed", "ratio_to_mean", "ratio_to_mean_per_seed", "seconds"):
                out[key][method] = out[key][same_as[method]]
            print(f"{name} {method}: = {same_as[method]} (latent {sizes[method]})", flush=True)
            continue
        per_seed, seconds = [], 0.0
        for seed, missing in enumerate(masks):
            gaps = np.where(missing, np.nan, x)
            started = time.perf_counter()
            filled, note, said = run_method(method, gaps, args, seed)
            seconds += time.perf_counter() - started
            if note:
                notes.setdefault(method, []).append(f"seed {seed}: {note}")
            if said:
                caught.setdefault(method, {})[str(seed)] = said
            bad = int((~np.isfinite(filled[missing])).sum())
            if bad:  # recorded, and left to make the RMSE NaN: a bug to find, not to hide
                nonfinite.setdefault(method, {})[str(seed)] = bad
            if not np.array_equal(filled[~missing], x[~missing]):
                notes.setdefault(method, []).append(f"seed {seed}: observed cells changed")
            per_seed.append(rmse(filled, x, missing, sd))
        out["rmse_per_seed"][method] = per_seed
        out["rmse"][method] = float(np.mean(per_seed))
        ratios = [r / m for r, m in zip(per_seed, out["rmse_per_seed"]["mean"])]
        out["ratio_to_mean_per_seed"][method] = ratios
        out["ratio_to_mean"][method] = float(np.mean(ratios))
        out["seconds"][method] = seconds
        print(f"{name} ({len(x)} rows, {features} features) {method}: RMSE {out['rmse'][method]:.4f} "
              f"(seeds " + ", ".join(f"{r:.4f}" for r in per_seed) + f"), ratio to mean "
              f"{out['ratio_to_mean'][method]:.4f}, {seconds:.1f} s"
              + (f" [{len(caught[method])} seed(s) with warnings]" if method in caught else "")
              + (f" [NONFINITE {nonfinite[method]}]" if method in nonfinite else ""), flush=True)
    out.update({"same_as": same_as, "notes": notes, "warnings": caught, "nonfinite": nonfinite})
    return out


# ---- summary and rule --------------------------------------------------------------------------------------------
def summarise(sets: dict) -> dict:
    from scipy.stats import rankdata

    out = {}
    for group in ("selection", "test"):
        done = {n: s for n, s in sets.items() if s["group"] == group}
        if not done:
            continue
        methods = [m for m in next(iter(done.values()))["rmse"] if all(m in s["rmse"] for s in done.values())]
        out[group] = {m: float(np.mean([s["ratio_to_mean"][m] for s in done.values()])) for m in methods}
        ranks = np.array([rankdata([s["rmse"][m] for m in methods]) for s in done.values()])  # (sets, methods)
        out[f"{group}_mean_rank"] = {m: float(ranks[:, i].mean()) for i, m in enumerate(methods)}
        out[f"{group}_sets"] = list(done)
    return out


def rule(sets: dict, args) -> dict:
    """The pre-registered rule applied to the selection tables this run has."""
    done = [n for n in SELECTION_SETS if n in sets]
    candidates = [vaekit_name(s) for s in args.latent_dims]
    settings = {"rate": args.rate, "seeds": args.seeds, "epochs": args.epochs, "min_steps": args.min_steps,
                "k": args.k, "batch_size": 64, "candidates": list(args.latent_dims)}
    out = {"default": DEFAULT, "margin": MARGIN, "selection_sets": done,
           "as_registered": settings == REGISTERED and done == list(SELECTION_SETS)}
    if not done:
        return {**out, "applied": False, "why": "no selection table in this run"}
    if DEFAULT not in candidates:
        return {**out, "applied": False, "why": f"{DEFAULT} is not among the candidates"}
    means = {c: float(np.mean([sets[n]["ratio_to_mean"][c] for n in done])) for c in candidates}
    best = min(means, key=means.get)
    gain = means[DEFAULT] - means[best]
    beats = best != DEFAULT and gain >= MARGIN
    return {**out, "applied": True, "selection_mean_ratio": means, "best": best, "best_gain_over_default": gain,
            "beats_default_by_margin": bool(beats), "chosen": best if beats else DEFAULT,
            "chosen_latent_sizes": {n: sets[n]["latent_sizes"][best if beats else DEFAULT] for n in done}}


# ---- command line ------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="wine and iris, 1 seed, 5 epochs, k 10; with --sets test the first 2 ADBench sets, 1,000 rows")
    p.add_argument("--sets", choices=("selection", "test", "all"), default="all")
    p.add_argument("--tables", nargs="+", choices=TABLE_SETS, help="test tables (default: all ten ADBench sets)")
    p.add_argument("--rate", type=float, default=0.2, help="probability that a cell is removed (MCAR)")
    p.add_argument("--seeds", type=int, default=3, help="masks (and vaekit / baseline seeds) 0 .. SEEDS-1")
    p.add_argument("--epochs", type=int, default=50, help="vaekit training epochs")
    p.add_argument("--min-steps", type=int, default=2000,
                   help="train vaekit for at least this many optimiser steps (more epochs on a small table; the "
                        "tabular default, 2,000; 0: exactly --epochs, as the first rule ran)")
    p.add_argument("--k", type=int, default=100, help="vaekit's importance samples per imputed row")
    p.add_argument("--latent-dims", nargs="+", default=list(CANDIDATES),
                   help="vaekit's candidate latent sizes: numbers, or 'half' (half the features, at least 2)")
    p.add_argument("--max-rows", type=int, default=ADBENCH_MAX_ROWS, help="ADBench sets subsampled to this many rows")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", help="folder holding adbench/ (default $VAEKIT_DATA, else ../shared/data)")
    p.add_argument("--out", type=Path, help="results file (default bench/results/imputation[-quick].json)")
    args = p.parse_args(argv)
    for spec in args.latent_dims:
        if spec != "half" and not (spec.isdigit() and int(spec) >= 1):
            p.error(f"--latent-dims: {spec!r} is neither a positive number nor 'half'")
    selection = list(SELECTION_SETS)
    tables = list(args.tables or TABLE_SETS)
    if args.quick:
        selection, args.seeds, args.epochs, args.k = ["wine", "iris"], 1, 5, 10
        args.min_steps = min(args.min_steps, 300)
        tables = tables[:2]
        args.max_rows = min(args.max_rows, 1000)
    args.names = ((selection if args.sets in ("selection", "all") else [])
                  + (tables if args.sets == "test" or (args.sets == "all" and not args.quick) else []))
    return args


def main(argv=None) -> None:
    # vaekit and the imputers are imported before the clock starts, so no method's seconds hold an import.
    import sklearn.ensemble  # noqa: F401
    import sklearn.impute  # noqa: F401
    import torch
    from threadpoolctl import threadpool_limits

    import vaekit

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # numpy / scikit-learn's BLAS and OpenMP too
    # A first fit in a process costs about a second more than the next (vaekit's lazy imports): paid here,
    # not by whichever table and candidate come first.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vaekit.VAE(kind="tabular", epochs=1, random_state=0).fit(np.random.default_rng(0).normal(size=(20, 3)))
    out = args.out or (RESULTS.with_name("imputation-quick.json") if args.quick else RESULTS)
    started = time.perf_counter()
    report = {"command": " ".join(["python bench/imputation.py", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                           "batch_size": 64, "baselines": list(BASELINES),
                           "data_dir": str(data_dir(args.data_dir))},
              "finished": False, "sets": {}}
    for name in args.names:
        report["sets"][name] = table(name, args)
        # After each table: a stopped run keeps every table it finished.
        report["summary"] = summarise(report["sets"])
        report["rule"] = rule(report["sets"], args)
        report["seconds"] = time.perf_counter() - started
        write_results(out, report)
    report["finished"] = True
    write_results(out, report)
    summary = report.get("summary", {})
    for key in ("selection", "test", "test_mean_rank"):
        if key in summary:
            print(f"{key}: " + ", ".join(f"{m} {v:.3f}" for m, v in summary[key].items()))
    r = report.get("rule", {})
    if r.get("applied"):
        print(f"rule ({'as registered' if r['as_registered'] else 'NOT the registered settings'}): best {r['best']} "
              f"(gain over {DEFAULT} {r['best_gain_over_default']:+.4f}), chosen {r['chosen']}")


if __name__ == "__main__":
    main()

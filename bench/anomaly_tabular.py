"""Tabular anomaly detection on data sets bundled with scikit-learn, vaekit beside IsolationForest,
OneClassSVM and PCA reconstruction error, all on the same splits.

- breast-cancer (569 tumours, 30 features): the normal class is benign. Each repetition trains on a
  random 70 % of the benign rows and scores the other 30 % of benign rows plus every malignant row
  (malignant = anomaly). Why this set: it is the one bundled table where one class is a natural
  "normal" and the other a real-world anomaly, the usual one-class use.
- wine (178 wines, 13 features): each cultivar in turn is normal (70 % of its rows to train), the
  other two cultivars are the anomalies; reported as the mean over the three.
AUROC (%) averaged over `--repeats` random splits. Features are standardised on the training rows
for the scikit-learn methods (vaekit does this itself, in the run).

    python bench/anomaly_tabular.py            # 10 repetitions, 200 epochs
    python bench/anomaly_tabular.py --quick    # 2 repetitions, 30 epochs
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REPO, machine, write_results  # noqa: E402

from vaekit.anomaly import METHODS as SCORE_METHODS  # noqa: E402

RESULTS = REPO / "bench" / "results" / "anomaly_tabular.json"
METHODS = ("vaekit", "isolation_forest", "one_class_svm", "pca_reconstruction")


def scores(train: np.ndarray, test: np.ndarray, args, seed: int) -> dict[str, np.ndarray]:
    """Higher = more typical, for each method."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    import vaekit

    vae = vaekit.VAE(latent_dim=args.latent_dim, epochs=args.epochs, score_method=args.score, k=args.k,
                     random_state=seed, model_options={"hidden": tuple(args.hidden)})
    out = {"vaekit": vae.fit(train).score_samples(test)}
    scaler = StandardScaler().fit(train)
    a, b = scaler.transform(train), scaler.transform(test)
    out["isolation_forest"] = IsolationForest(random_state=seed).fit(a).score_samples(b)
    out["one_class_svm"] = OneClassSVM(gamma="scale", nu=0.1).fit(a).score_samples(b)
    pca = PCA(0.9, random_state=seed).fit(a)
    out["pca_reconstruction"] = -((pca.inverse_transform(pca.transform(b)) - b) ** 2).sum(1)
    return out


def one_class_case(x: np.ndarray, normal: np.ndarray, args) -> dict[str, float]:
    """Mean AUROC over repetitions: train on 70 % of the normal rows, test on the rest + all anomalies."""
    from sklearn.metrics import roc_auc_score

    aurocs = {m: [] for m in METHODS}
    for rep in range(args.repeats):
        rng = np.random.default_rng(rep)
        idx = rng.permutation(np.flatnonzero(normal))
        n_train = int(0.7 * len(idx))
        test = np.concatenate([idx[n_train:], np.flatnonzero(~normal)])
        for m, s in scores(x[idx[:n_train]], x[test], args, rep).items():
            aurocs[m].append(100 * roc_auc_score(~normal[test], -s))
    return {m: float(np.mean(v)) for m, v in aurocs.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--latent-dim", type=int, default=4)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--score", default="iw", choices=SCORE_METHODS,
                   help="vaekit's score_method")
    p.add_argument("--out", type=Path, help="results file (default bench/results/anomaly_tabular[-quick].json)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = 2, 30
    import torch
    from sklearn.datasets import load_breast_cancer, load_wine

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report = {"settings": settings, "command": " ".join(["python bench/anomaly_tabular.py", *(argv or sys.argv[1:])]),
              "machine": machine()}
    cancer = load_breast_cancer()
    report["breast_cancer"] = one_class_case(cancer.data, cancer.target == 1, args)
    print("breast-cancer (benign normal): " + ", ".join(f"{m} {v:.1f}" for m, v in report["breast_cancer"].items()),
          flush=True)
    wine = load_wine()
    per_class = [one_class_case(wine.data, wine.target == c, args) for c in range(3)]
    report["wine"] = {m: float(np.mean([r[m] for r in per_class])) for m in METHODS}
    report["wine_per_class"] = per_class
    print("wine (one cultivar normal, mean of 3): " + ", ".join(f"{m} {v:.1f}" for m, v in report["wine"].items()))
    report["seconds"] = time.perf_counter() - started
    out = args.out or (RESULTS.with_name("anomaly_tabular-quick.json") if args.quick else RESULTS)
    write_results(out, report)


if __name__ == "__main__":
    main()

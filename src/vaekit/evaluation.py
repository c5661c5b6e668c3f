"""Evaluating a trained VAE: likelihood bounds, latent health, latent probes, and a collapse warning.

The estimators work on any vaekit model (`encode -> DiagonalGaussian`, `log_likelihood(x, z)`):

- negative ELBO, split into reconstruction and KL (Kingma & Welling 2014);
- the importance-weighted bound on -log p(x) with k samples (Burda et al. 2016, eq. 8);
- bits per dimension (images) and per-word perplexity counting <eos> (text);
- active units: dimensions u with Cov_x(E_q[z_u]) > 0.01 (Burda et al. 2016, sec. 5.2);
- mutual information I(x; z) under q, with the aggregate posterior q(z) estimated over the whole
  evaluation set (Hoffman & Johnson 2016; He et al. 2019, `calc_mi`);
- KL per latent dimension; k-NN and logistic-regression probes on latent means; trustworthiness;
- optionally the amortisation gap: the negative ELBO again with each example's posterior fitted to
  it alone (Cremer et al. 2018; `objectives.optimise_posterior`).

`evaluate(run, data)` computes them all for a run directory; writing evaluation.json, evaluation.md and
the plots, and `compare`, live in evaluation_report.py. (The collapse warning while training is
training.callbacks.CollapseMonitor.)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import modalities
from .distributions import LOG_2PI
from .errors import VaekitError
from .objectives import ACTIVE_THRESHOLD, active_units, elbo_terms, iw_log_likelihood, optimise_posterior

DECODE_BUDGET = 16_000_000  # float elements one IW decoder pass may hold (~64 MB in float32); larger
# passes were no faster on CPU (cache-bound), 30 % slower for the 8x8 conv model


@dataclass(frozen=True)
class EvalConfig:
    """How an evaluation is run. k None: 1000 samples for images and tables, 500 for text."""

    k: int | None = None  # importance samples per example for the IW bound
    limit: int | None = None  # evaluate only the first N examples
    seed: int = 0  # noise for sampling z (and for binarising images once, if the run binarises)
    batch_size: int = 100  # examples per pass
    probes: bool = True  # k-NN / logistic regression / trustworthiness where labels exist
    variations: int = 0  # text: variations per held-out sentence for the text-quality metrics (0: skip)
    variation_inputs: int = 100  # text: how many held-out sentences get variations
    svi_steps: int = 0  # >0: also the -ELBO with each example's posterior fitted alone for this many Adam
    # steps from the encoder's (the amortisation gap); each step costs a decoder pass with gradients
    svi_lr: float = 0.02  # Adam's step size for those steps

    def __post_init__(self):
        checks = [
            (self.k is None or (isinstance(self.k, int) and self.k >= 1), f"k must be at least 1, got {self.k}"),
            (self.limit is None or self.limit >= 2, f"limit must be at least 2, got {self.limit}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.variations >= 0, f"variations must be >= 0, got {self.variations}"),
            (self.variation_inputs >= 1, f"variation inputs must be >= 1, got {self.variation_inputs}"),
            (self.svi_steps >= 0, f"svi steps must be >= 0, got {self.svi_steps}"),
            (self.svi_lr > 0 and math.isfinite(self.svi_lr), f"svi lr must be a positive number, got {self.svi_lr}"),
        ]
        for ok, message in checks:
            if not ok:
                raise VaekitError(message)


# ---- the estimators -----------------------------------------------------------------------------
@torch.no_grad()
def likelihood_bounds(model, x: Tensor, k: int, batch_size: int = 100, chunk: int | None = None,
                      svi_steps: int = 0, svi_lr: float = 0.02, progress: bool = False) -> dict:
    """Per-example negative ELBO terms and the k-sample IW bound on -log p(x), all in nats.

    x: (N, ...) prepared model input. Returns tensors on the CPU: "reconstruction" (N,),
    "kl_per_dim" (N, D), "neg_elbo" (N,), "iw_nll" (N,), plus "mean" and "log_var" (N, D) of q(z|x);
    with svi_steps > 0 also "svi_reconstruction", "svi_kl" and "svi_neg_elbo" (N,): the one-sample ELBO terms
    under each example's posterior fitted alone (`optimise_posterior`; the IW bound keeps the
    encoder's posterior as its proposal, so it stays comparable with evaluations without them).
    The model must be in eval mode (dropout, batch norm and word dropout off). progress: a progress bar
    over the batches, on a terminal.
    """
    from tqdm.auto import tqdm

    if model.training:
        raise ValueError("likelihood_bounds needs model.eval()")
    lengths = modalities.of_model(model).example_lengths(x)  # text: batches of sentences of like length
    order = lengths.argsort(stable=True) if lengths is not None else torch.arange(len(x))  # (N,)
    out: dict[str, list] = {"reconstruction": [], "kl_per_dim": [], "iw_nll": [], "mean": [], "log_var": []}
    for start in tqdm(range(0, len(x), batch_size), desc=f"bounds (k={k})", leave=False,
                      disable=None if progress else True):  # None: shown on a terminal only
        batch = x[order[start:start + batch_size]].to(model.device)
        posterior = model.encode(batch)
        terms = elbo_terms(model, batch, posterior)
        samples_per_pass = chunk or iw_chunk(model, batch)
        out["reconstruction"].append(terms.reconstruction.float().cpu())
        out["kl_per_dim"].append(terms.kl_per_dim.float().cpu())
        out["iw_nll"].append(-iw_log_likelihood(model, batch, k, samples_per_pass, posterior).float().cpu())
        out["mean"].append(posterior.mean.float().cpu())
        out["log_var"].append(posterior.log_var.float().cpu())
        if svi_steps:
            fitted = elbo_terms(model, batch, optimise_posterior(model, batch, svi_steps, svi_lr, start=posterior))
            out.setdefault("svi_reconstruction", []).append(fitted.reconstruction.float().cpu())
            out.setdefault("svi_kl", []).append(fitted.kl.float().cpu())
    inverse = order.argsort()  # back to the caller's order
    result = {key: torch.cat(values)[inverse] for key, values in out.items()}
    result["neg_elbo"] = result["reconstruction"] + result["kl_per_dim"].sum(1)
    if svi_steps:
        result["svi_neg_elbo"] = result["svi_reconstruction"] + result["svi_kl"]
    return result


def iw_chunk(model, batch: Tensor) -> int:
    """Samples per IW decoder pass so one pass holds about DECODE_BUDGET floats.

    The largest tensor of a pass is the decoder's output: pixels (x 64 channels of activations) for
    images, real tokens x vocabulary for text (padding is never projected).
    """
    per_example = modalities.of_model(model).decode_cost(model, batch)
    return max(1, int(DECODE_BUDGET // (per_example * len(batch))))


def mutual_information(mean: Tensor, log_var: Tensor, generator: torch.Generator | None = None,
                       chunk: int = 1024) -> float:
    """I(x; z) under q(x, z) = p_data(x) q(z | x), in nats (Hoffman & Johnson 2016; He et al. 2019).

    I = E_x[ -H(q(z|x)) ] - E_{x, z~q(z|x)}[ log q(z) ], with the aggregate posterior
    q(z) ~= (1/N) sum_j q(z | x_j) over all N evaluation examples and one z per example, as in
    He et al.'s `calc_mi`, but over the whole set rather than one batch. mean, log_var: (N, D).
    The quantity lies in [0, log N]; this Monte-Carlo estimate of it is not clipped and can fall a
    little outside from the noise of the z draws (just below 0 for a collapsed code): the mean of
    `mutual_information_terms`, whose standard error gives the scale of that noise.
    """
    return float(mutual_information_terms(mean, log_var, generator, chunk).mean())


@torch.no_grad()
def mutual_information_terms(mean: Tensor, log_var: Tensor, generator: torch.Generator | None = None,
                             chunk: int = 1024) -> Tensor:
    """Per example i, -H(q(z|x_i)) - log q(z_i) with z_i ~ q(z|x_i): (N,) float64; their mean is
    `mutual_information`."""
    mean, log_var = mean.double(), log_var.double()
    n, d = mean.shape
    neg_entropy = -0.5 * (d * LOG_2PI + (1 + log_var).sum(1))  # (N,): -H(q(z|x_i))
    noise = torch.randn(mean.shape, generator=generator, dtype=torch.float64)
    z = mean + (0.5 * log_var).exp() * noise  # (N, D): one draw per example
    inv_var = (-log_var).exp()  # (N, D)
    # log q(z_i | x_j) = const_j - 0.5 * sum_d (z_id^2 - 2 z_id m_jd) / v_jd: two matmuls, not (N, N, D).
    const = -0.5 * (d * LOG_2PI + log_var.sum(1) + (mean.pow(2) * inv_var).sum(1))  # (N,)
    scaled_mean = mean * inv_var  # (N, D)
    log_qz = []
    for start in range(0, n, chunk):
        zc = z[start:start + chunk]  # (c, D)
        log_density = const - 0.5 * (zc.pow(2) @ inv_var.T - 2 * zc @ scaled_mean.T)  # (c, N)
        log_qz.append(torch.logsumexp(log_density, 1) - math.log(n))  # (c,)
    return neg_entropy - torch.cat(log_qz)  # (N,)


def latent_probes(mean: np.ndarray, labels: np.ndarray | None, inputs: np.ndarray | None = None,
                  seed: int = 0, max_trustworthiness: int = 1000) -> dict:
    """How much of the labels and of the input geometry the latent means keep.

    k-NN (k=5) and logistic-regression accuracy, trained on 70 % of the examples and tested on the
    other 30 % (stratified, seeded); trustworthiness (Venna & Kaski 2001; scikit-learn) of the means
    as an embedding of the flattened inputs, on a random subsample of at most `max_trustworthiness`.
    Entries whose data are missing (no labels, too few examples) are left out.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    result: dict = {}
    if labels is not None and len(np.unique(labels)) > 1 and len(labels) >= 20:
        counts = np.bincount(np.unique(labels, return_inverse=True)[1])
        stratify = labels if counts.min() >= 2 else None
        z_tr, z_te, y_tr, y_te = train_test_split(mean, labels, test_size=0.3, random_state=seed, stratify=stratify)
        if len(z_tr) >= 5:
            result["knn_accuracy"] = float(KNeighborsClassifier(5).fit(z_tr, y_tr).score(z_te, y_te))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the score is what we report
            logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            result["logreg_accuracy"] = float(logreg.fit(z_tr, y_tr).score(z_te, y_te))
    if inputs is not None and len(inputs) > 12:
        pick = np.random.default_rng(seed).permutation(len(inputs))[:max_trustworthiness]
        result["trustworthiness"] = float(trustworthiness(inputs[pick].reshape(len(pick), -1), mean[pick],
                                                          n_neighbors=5))
    return result


# ---- evaluating a run -----------------------------------------------------------------------------
FORMAT = "vaekit-evaluation"
FORMAT_VERSION = 1
DEFINITIONS = {
    "neg_elbo": ("nats per example", "negative ELBO: reconstruction + KL, one z ~ q(z|x) per example "
                 "(Kingma & Welling 2014); mean over the examples"),
    "reconstruction": ("nats per example", "-log p(x | z), z ~ q(z|x), one draw per example"),
    "kl": ("nats per example", "KL(q(z|x) || N(0, I)), analytic, summed over latent dimensions"),
    "iw_nll": ("nats per example", "importance-weighted bound on -log p(x) with k samples from q(z|x) "
               "(Burda et al. 2016, eq. 8); an upper bound on the true NLL that tightens with k"),
    "iw_nll_stderr": ("nats", "standard error of the mean of iw_nll over the examples"),
    "neg_elbo_svi": ("nats per example", "negative ELBO with each example's posterior fitted to it alone: "
                     "svi_steps Adam steps on its ELBO from the encoder's mean and variance (semi-amortised "
                     "inference, Kim et al. 2018); one z draw per example"),
    "kl_svi": ("nats per example", "KL(q(z|x) || N(0, I)) of those fitted posteriors"),
    "amortisation_gap": ("nats per example", "neg_elbo - neg_elbo_svi: how much ELBO the encoder leaves "
                         "that a per-example posterior finds (Cremer et al. 2018); large values say the "
                         "encoder lags its decoder (He et al. 2019; vaekit refine)"),
    "bits_per_dim": ("bits", "iw_nll / (C*H*W * ln 2)"),
    "iw_nll_raw_units": ("nats per row", "tabular runs: iw_nll for the rows in their own units, not standardised "
                         "(iw_nll + sum of log std of the training split's features; change of variables)"),
    "ppl": ("per word", "per-word perplexity exp(sum of iw_nll / tokens), tokens counting <eos> "
            "(as the PTB literature counts)"),
    "ppl_elbo": ("per word", "exp(sum of neg_elbo / tokens), tokens counting <eos> (what training reports)"),
    "unk_share": ("fraction", "share of the evaluated tokens that are <unk> for this run's vocabulary"),
    "active_units": ("dimensions", f"latent dimensions u with Cov_x(E_q[z_u]) > {ACTIVE_THRESHOLD} "
                     "(Burda et al. 2016)"),
    "mutual_information": ("nats", "Monte-Carlo estimate of I(x; z) under q: E[-H(q(z|x))] - E[log q(z)], "
                           "aggregate posterior q(z) over all evaluated examples, one z each (Hoffman & Johnson "
                           "2016; He et al. 2019). I(x; z) lies in [0, log(examples)]; the estimate is not "
                           "clipped and can fall slightly outside from sampling noise (e.g. just below 0 for a "
                           "collapsed code): see mutual_information_stderr"),
    "mutual_information_stderr": ("nats", "standard error of the mean of mutual_information's per-example terms "
                                  "-H(q(z|x_i)) - log q(z_i): the scale of its sampling noise (approximate: the "
                                  "terms share q(z)); an estimate within about two of these of 0 is no evidence "
                                  "of information in z"),
    "knn_accuracy": ("fraction", "5-nearest-neighbour accuracy on latent means, 70/30 stratified split of "
                     "the evaluated examples"),
    "logreg_accuracy": ("fraction", "logistic-regression accuracy on standardised latent means, same split"),
    "trustworthiness": ("0..1", "trustworthiness (5 neighbours) of latent means as an embedding of the "
                        "flattened inputs, on up to 1000 examples (scikit-learn)"),
}


def evaluate(run, data: str, *, out=None, write: bool = True, overwrite: bool = False,
             data_dir: str | None = None, column: str | None = None, device: str = "auto", echo=print,
             **settings) -> dict:
    """Evaluate a run (a path or a loaded Run) on `data` (the same specs as training: "digits",
    "mnist:test", a folder, "ptb:test", a text file ...). `settings` are EvalConfig fields.

    Returns the evaluation (the content of evaluation.json). With `write`, also writes
    evaluation.json, evaluation.md and plots into the run directory or `out` (never replacing an
    earlier evaluation unless `overwrite`; see `evaluation_paths`). `device`: where the model runs
    (auto: CUDA when available), for a path; a loaded Run keeps its own. `data_dir`, `column`: where
    named data sets are and which CSV column holds a text run's sentences (`Run.read_from`).
    """
    from . import api

    config = EvalConfig(**settings)
    run = (api.load(run, device) if not isinstance(run, api.Run) else run).read_from(data_dir, column)
    if write:
        from .evaluation_report import output_folder

        output_folder(run, out, create=False)  # fail before the work, not after it
    k = config.k or run.modality.eval_k
    x, labels, extra = load_eval_data(run, data, config)
    echo(f"evaluating {run.path} on {data}: {len(x)} examples, k={k} ...")
    run.model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        bounds = likelihood_bounds(run.model, x, k, config.batch_size, progress=True, svi_steps=config.svi_steps,
                                   svi_lr=config.svi_lr)
        mi_terms = mutual_information_terms(bounds["mean"], bounds["log_var"],
                                            torch.Generator().manual_seed(config.seed))
    result = _result(run, data, config, k, len(x), extra)
    metrics = summarise(bounds, mi_terms)
    metrics.update(run.modality.eval_metrics(run, x, bounds, extra))
    if config.probes:
        # A table's missing cell (NaN) reads as 0, its column's training mean, as the encoder reads it.
        inputs = np.nan_to_num(x.flatten(1).cpu().numpy(), nan=0.0) if run.modality.probe_inputs else None
        metrics.update(latent_probes(bounds["mean"].numpy(), labels, inputs, config.seed))
    definitions = DEFINITIONS
    if run.modality.makes_text and config.variations:
        scores, text_definitions, text_settings = text_quality(run, data, config)
        metrics.update(scores)
        definitions = {**DEFINITIONS, **text_definitions}
        result["settings"].update(text_settings)
    result["metrics"] = {name: _entry(name, value, definitions) for name, value in metrics.items()}
    result["kl_per_dim"] = bounds["kl_per_dim"].mean(0).tolist()
    result["posterior_mean_variance"] = active_units(bounds["mean"])[1].tolist()
    if write:
        from .evaluation_report import write_evaluation

        write_evaluation(result, run, bounds, labels, out=out, overwrite=overwrite, echo=echo)
    return result


def summarise(bounds: dict, mi_terms: Tensor) -> dict:
    """The modality-free figures: means over the examples (and the standard errors of the estimates).

    mi_terms: (N,) `mutual_information_terms`."""
    n = len(bounds["neg_elbo"])
    stderr = lambda values: float(values.std() / math.sqrt(n)) if n > 1 else 0.0
    figures = {"neg_elbo": float(bounds["neg_elbo"].mean()), "reconstruction": float(bounds["reconstruction"].mean()),
               "kl": float(bounds["kl_per_dim"].sum(1).mean()), "iw_nll": float(bounds["iw_nll"].mean()),
               "iw_nll_stderr": stderr(bounds["iw_nll"]), "active_units": active_units(bounds["mean"])[0],
               "mutual_information": float(mi_terms.mean()), "mutual_information_stderr": stderr(mi_terms)}
    if "svi_neg_elbo" in bounds:
        svi_neg_elbo = float(bounds["svi_neg_elbo"].mean())
        figures.update({"neg_elbo_svi": svi_neg_elbo, "kl_svi": float(bounds["svi_kl"].mean()),
                        "amortisation_gap": figures["neg_elbo"] - svi_neg_elbo})
    return figures


def _entry(name: str, value, definitions: dict) -> dict:
    unit, definition = definitions.get(name, ("", ""))
    return {"value": value, "unit": unit, "definition": definition}


def _result(run, data: str, config: EvalConfig, k: int, n: int, extra: dict) -> dict:
    import dataclasses
    import time

    from . import stamps
    from .version import __version__

    settings = {"data": data, "examples": n, **dataclasses.asdict(config), "k": k}  # k resolved
    settings.update(extra.get("settings", {}))
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "vaekit_version": __version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "run": str(run.path), "kind": run.kind,
            "model": run.model.name, "latent_dim": run.model.latent_dim, "settings": settings,
            stamps.KEY: stamps.of_run(run.path)}  # the weights evaluated (compare warns when they changed)


def load_eval_data(run, source: str, config: EvalConfig) -> tuple[Tensor, np.ndarray | None, dict]:
    """(x prepared as the model takes it, labels or None, extra facts) for `source`.

    Images are prepared as in training; a run trained with dynamic binarisation is evaluated on one
    binarisation of the data, drawn with the evaluation's seed (the usual protocol for binarised MNIST).
    """
    return run.modality.eval_data(run, source, config.limit, config.seed)


def text_quality(run, data: str, config: EvalConfig) -> tuple[dict, dict, dict]:
    """Variation metrics (vaekit.text_quality) for the first `variation_inputs` held-out sentences:
    `variations` codes drawn from each posterior, decoded greedily, compared with the input
    (after the tokenizer's normalisation, so case and spacing do not count as changes).

    Returns (the text_* figures, their (unit, definition), settings: the sentence-embedding model
    behind text_semantic_consistency and how BLEU was computed)."""
    try:
        from .text_quality import DEFINITIONS as TEXT_DEFINITIONS
        from .text_quality import UNITS as TEXT_UNITS
        from .text_quality import variation_metrics
    except ImportError as e:
        raise VaekitError(f"--variations needs vaekit.text_quality, which is not available here ({e}); "
                          "evaluate with --variations 0") from None
    from .modalities.text import read_texts, texts

    sentences = read_texts(data, run.data_config, default_split="test")[:config.variation_inputs]
    inputs = texts(run.tokenizer, run.prepare(sentences))
    variations = [run.vary(s, config.variations, seed=config.seed + i) for i, s in enumerate(sentences)]
    try:
        train = set(texts(run.tokenizer, run.prepare(read_texts(run.data_config.data, run.data_config))))
    except VaekitError:
        train = None  # the training data is not here: novelty cannot be judged
    scores = variation_metrics(inputs, variations, train_sentences=train)
    numbers = [k for k, v in scores.items() if isinstance(v, (int, float)) or v is None]
    figures = {f"text_{k}": scores[k] for k in numbers}
    definitions = {f"text_{k}": (TEXT_UNITS[k], TEXT_DEFINITIONS[k]) for k in numbers}
    settings = {"text_semantic_model": scores.get("semantic_model"),
                **{f"text_{k}": v for k, v in scores.get("settings", {}).items()}}
    return figures, definitions, settings

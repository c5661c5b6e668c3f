"""Sentence VAEs on Penn Treebank: the design document's model beside its Keras peer, and the default.

Part 1 (`seed`): vaekit's `text-seed` (the document's BiGRU/RepeatVector VAE) trains on PTB train
for the same number of epochs as ../shared/peers/keras_seed_text.py, in the same run, batch 32,
same maximum length (the peer's 99th percentile of words, +1 for <eos>). Reported: test negative
ELBO, KL and reconstruction per sentence (nats), per-word perplexity, and training words/s counted
as the peer counts them (real words, no <eos>, training time only). vaekit's numbers include
predicting <eos>, which the peer does not model, so its per-sentence figures carry an extra term.

Part 2 (`default`): the default `text-rnn` (autoregressive LSTM decoder of 1024 units with tied
embeddings, dropout, KL annealing, free bits, weights averaged over the run's second half), trained on
train, validated on valid, its encoder then refined against the fixed decoder (`vaekit refine`),
reported on test: negative ELBO, KL, perplexity. `--rnn-run` reports a run trained by the CLI instead.

Both parts also report the importance-weighted bound on the test NLL per sentence (k = --iw-k, 500;
Burda et al. 2016), the mutual information I(x; z) (He et al. 2019) and the active units (Burda et al.
2016), from vaekit.evaluation; the flat `test_nll`, `mi`, `active_units` keys are the default model's.
`--svi-steps N` adds the test -ELBO with each sentence's posterior fitted alone (`test_neg_elbo_svi`,
`amortisation_gap`; Cremer et al. 2018), a figure beside the encoder's `test_neg_elbo`, not instead of it.

    python bench/text_ptb.py                  # 3 epochs each side; --rnn-epochs (20) for part 2
    python bench/text_ptb.py --quick          # 4,000 training sentences, 1 epoch each
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import REPO, data_dir, machine, run_peer, write_results  # noqa: E402

RESULTS = REPO / "bench" / "results" / "text_ptb.json"


def peer_max_len(ptb: Path) -> int:
    """The peer's T: the 99th percentile of training sentence lengths in words."""
    lengths = [len(line.split()) for line in (ptb / "ptb.train.txt").read_text().splitlines() if line.split()]
    return int(np.ceil(np.percentile(lengths, 99)))


def train_and_test(model: str, args, max_len: int, train_overrides: dict, model_options: dict,
                   refine: dict | None = None) -> dict:
    """Train `model` with vaekit's own data pipeline and Trainer, then (with `refine`, settings of
    train.refine_config) fit its encoder again as `vaekit refine` does; figures on PTB test."""
    import torch

    from vaekit.data import TensorData
    from vaekit.modalities import text
    from vaekit.models import build_model
    from vaekit.tokenizer import Tokenizer, TokenizerConfig
    from vaekit.training import TrainConfig, Trainer, refine_config

    # The seed model computes every padded position, as its peer does: random batches like the
    # peer's; the default model trims padding, so it takes length-bucketed batches.
    config = text.TextDataConfig("ptb", val_data="ptb:valid", data_dir=str(args.ptb_root), max_len=max_len,
                                 limit=args.limit, bucket=model != "text-seed")
    prepared = text.training_data(config, tokenizer=TokenizerConfig(max_vocab=None))
    tokenizer = Tokenizer.from_json(json.loads(prepared.files[text.TOKENIZER]))
    test_sentences = text.read_texts("ptb:test", config)
    test = TensorData(text.encode_sentences(tokenizer, test_sentences, max_len))
    torch.manual_seed(0)
    vae = build_model(model, prepared.model_options, **model_options)
    train_config = TrainConfig(**{"batch_size": 32, "progress": args.progress, "threads": args.threads,
                                  **train_overrides})
    trainer = Trainer(vae, train_config, prepared.train, prepared.val, callbacks=text.TEXT.callbacks(prepared))
    history = trainer.fit()
    refined = {}
    if refine is not None:
        refiner = Trainer(trainer.model, refine_config(train_config, validated=True, **refine), prepared.train,
                          prepared.val)
        refined = {"refine_history": refiner.fit(), "refine_config": dict(vars(refiner.config))}
    words = int((prepared.train.x > 3).sum())  # real words (ids 0-3 are specials), as the peer counts
    return test_figures(trainer, test, args, history, words, tokenizer.vocab_size, max_len) | refined


def test_figures(trainer, test, args, history: list[dict], train_words: int, vocab_size: int, max_len: int) -> dict:
    """Test -ELBO, KL, perplexity, IW NLL and latent health of a trained model; words/s from its history."""
    scores = trainer.evaluate(test)
    latent = {**iw_and_latent_figures(trainer.model, test, args), **svi_figures(trainer.model, test, args)}
    n_tokens = int((test.x != 0).sum())  # words + <eos>, within max_len
    seconds = sum(h["seconds"] for h in history)
    return {"model": trainer.model.name, "epochs": len(history), "train_words": train_words,
            "vocab_size": vocab_size, "max_len": max_len,
            "test_neg_elbo": scores["loss"], "test_rec": scores["reconstruction"], "test_kl": scores["kl"],
            "test_ppl": math.exp(scores["loss"] * len(test) / n_tokens),
            "words_per_s": train_words * len(history) / seconds, "train_seconds": seconds, **latent,
            "history": history, "train_config": {k: v for k, v in vars(trainer.config).items()}}


def trained_run_figures(path: str, args) -> dict:
    """The same figures for a run trained with `vaekit train text` (e.g. a long run of the default model)."""
    from vaekit import api
    from vaekit.data import TensorData
    from vaekit.modalities import text
    from vaekit.training import TrainConfig, Trainer

    run = api.load(path)
    if run.kind != "text":
        raise SystemExit(f"{path} is a {run.kind} run, not a text run")
    max_len = run.model.config.max_len
    config = text.TextDataConfig("ptb", data_dir=str(args.ptb_root), max_len=max_len)
    test = TensorData(text.encode_sentences(run.tokenizer, text.read_texts("ptb:test", config), max_len))
    trained = Path(run.config.get("refined_from", run.path))  # a refined run: epochs and words/s of its source
    history = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    train = text.read_texts("ptb", config)
    words = int((text.encode_sentences(run.tokenizer, train, max_len) > 3).sum())
    # Test figures in fp32 whatever precision the run trained in, as the IW bound below is. This
    # Trainer only evaluates: it has no validation data, so it keeps no best epoch either (and it
    # freezes nothing, whatever a refined run trained).
    train_config = api.from_dict(TrainConfig, {**run.config["train"], "precision": "fp32", "keep_best": False,
                                                 "trainable": "all"}, "train")
    trainer = Trainer(run.model, train_config, test)
    return {**test_figures(trainer, test, args, history, words, run.tokenizer.vocab_size, max_len), "run": str(path),
            **({"refined_from": run.config["refined_from"]} if "refined_from" in run.config else {})}


# ---- the importance-weighted NLL and latent health (vaekit.evaluation), kept apart from the rest ----
def _bounds(model, x, k: int, **options) -> tuple[dict, float]:
    """vaekit.evaluation.likelihood_bounds in eval mode with noise seed 0, and the seconds it took."""
    import time

    import torch

    from vaekit.evaluation import likelihood_bounds

    started = time.perf_counter()
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        bounds = likelihood_bounds(model, x, k, batch_size=50, **options)
    return bounds, time.perf_counter() - started


def iw_and_latent_figures(model, test, args) -> dict:
    """IW bound on the test NLL per sentence (Burda et al. 2016), MI (He et al. 2019) and active units
    (Burda et al. 2016) on the first --iw-limit test sentences, with --iw-k samples."""
    import torch

    from vaekit.evaluation import active_units, mutual_information

    if not args.iw_k:
        return {}
    x = test.x[:args.iw_limit] if args.iw_limit else test.x
    b, seconds = _bounds(model, x, args.iw_k)
    tokens = int((x != 0).sum())
    return {"test_nll": float(b["iw_nll"].mean()), "test_nll_k": args.iw_k, "test_nll_sentences": len(x),
            "test_ppl_iw": math.exp(float(b["iw_nll"].sum()) / tokens),
            "mi": mutual_information(b["mean"], b["log_var"], torch.Generator().manual_seed(0)),
            "active_units": active_units(b["mean"])[0], "iw_seconds": seconds}


def svi_figures(model, test, args) -> dict:
    """Test -ELBO with each sentence's posterior fitted alone (--svi-steps Adam steps from the encoder's;
    vaekit.objectives.optimise_posterior) beside the encoder's own on the same sentences and noise seed:
    the amortisation gap (Cremer et al. 2018). A separate figure: test_neg_elbo stays the encoder's."""
    if not args.svi_steps:
        return {}
    x = test.x[:args.svi_limit] if args.svi_limit else test.x
    b, seconds = _bounds(model, x, 1, svi_steps=args.svi_steps, svi_lr=args.svi_lr)
    fitted = float(b["svi_neg_elbo"].mean())
    return {"test_neg_elbo_svi": fitted, "test_kl_svi": float(b["svi_kl"].mean()),
            "test_neg_elbo_same_sentences": float(b["neg_elbo"].mean()),
            "amortisation_gap": float(b["neg_elbo"].mean()) - fitted, "svi_steps": args.svi_steps,
            "svi_lr": args.svi_lr, "svi_sentences": len(x), "svi_seconds": seconds}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="4,000 sentences, 1 epoch each (same code path)")
    p.add_argument("--epochs", type=int, default=3, help="epochs for the seed model and its peer (0: skip)")
    p.add_argument("--rnn-epochs", type=int, default=20, help="epochs for the default model (0: skip)")
    p.add_argument("--rnn-run", help="report this run of the default model (trained with `vaekit train text`) "
                                     "instead of training one here")
    p.add_argument("--data-dir", help="folder holding ptb/ (default: $VAEKIT_DATA or ../shared/data)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads for vaekit (0: torch's default)")
    p.add_argument("--peer-python")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--iw-k", type=int, default=500, help="importance samples for the test NLL bound (0: skip)")
    p.add_argument("--iw-limit", type=int, help="IW bound, MI and active units on the first N test sentences")
    p.add_argument("--svi-steps", type=int, default=0,
                   help="also the test -ELBO with each sentence's posterior fitted alone for N steps (0: skip)")
    p.add_argument("--svi-lr", type=float, default=0.02, help="Adam's step size for --svi-steps")
    p.add_argument("--svi-limit", type=int, help="--svi-steps on the first N test sentences")
    p.add_argument("--merge", action="store_true",
                   help="keep the parts this run skips (seed and peer with --epochs 0) from the existing results file")
    args = p.parse_args(argv)
    args.ptb_root = data_dir(args.data_dir)
    args.limit = 4000 if args.quick else None
    if args.quick:
        args.epochs, args.rnn_epochs = 1, min(args.rnn_epochs, 1)
        args.iw_k, args.iw_limit = min(args.iw_k, 20), args.iw_limit or 200
        args.svi_limit = args.svi_limit or 200
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    ptb = args.ptb_root / "ptb" if (args.ptb_root / "ptb").is_dir() else args.ptb_root
    max_len = peer_max_len(ptb) + 1
    report = {"settings": {"quick": args.quick, "epochs": args.epochs, "rnn_epochs": args.rnn_epochs,
                           "limit": args.limit, "precision": args.precision, "threads": args.threads,
                           "iw_k": args.iw_k, "iw_limit": args.iw_limit,
                           "max_len": max_len,
                           "command": " ".join(["python bench/text_ptb.py", *(argv or sys.argv[1:])])},
              "machine": machine()}
    seed, peer = {}, {}
    if args.epochs:
        print(f"seed: text-seed, {args.epochs} epochs, max_len {max_len} ...", flush=True)
        seed = train_and_test("text-seed", args, max_len, {"epochs": args.epochs, "precision": args.precision}, {})
    report["seed"] = seed
    if args.epochs and not args.no_peer:
        print("keras peer ...", flush=True)
        env = {"DATA": ptb, "EPOCHS": args.epochs, **({"LIMIT": args.limit} if args.limit else {})}
        peer = run_peer("keras_seed_text.py", "keras-text", env, args.peer_python)
    report["peer"] = peer
    if "tokens_per_s" in peer:
        report["seed"]["ratio_words_per_s"] = seed["words_per_s"] / peer["tokens_per_s"]
    if args.rnn_run:
        print(f"default: the trained run {args.rnn_run} ...", flush=True)
        report["default"] = trained_run_figures(args.rnn_run, args)
    elif args.rnn_epochs:
        print(f"default: text-rnn, {args.rnn_epochs} epochs ...", flush=True)
        steps_per_epoch = math.ceil((args.limit or 42068) / 32)
        # Dropout 0.6 on the decoder's embeddings and outputs regularises the 1024-unit decoder (0.5 let
        # it overfit PTB from epoch 13); free bits keep the code in use, so word dropout is not needed
        # here. The weights are averaged over the second half of the run, and the best epoch is kept;
        # then the encoder is fitted again to the fixed decoder (vaekit refine), with a per-dimension KL
        # floor that keeps the test KL above 5 nats (bench/RESULTS.md).
        report["default"] = train_and_test(
            "text-rnn", args, max_len,
            {"epochs": args.rnn_epochs, "precision": args.precision, "free_bits": 0.2, "keep_best": True,
             "average_from": max(1, args.rnn_epochs // 2), "kl_warmup_steps": 2 * steps_per_epoch,
             "grad_clip": 5.0, "lr_schedule": "cosine", "lr_min": 5e-5},
            {"word_dropout": 0.0, "dropout": 0.6}, refine={"epochs": 1, "free_bits": 0.12})
    out = RESULTS.with_name("text_ptb-quick.json") if args.quick else RESULTS
    if args.merge and out.exists():  # e.g. a long IW bound of the default model alone
        earlier = json.loads(out.read_text())
        for part in ("seed", "peer", "default"):
            if not report.get(part) and earlier.get(part):
                report[part] = earlier[part]
                report["settings"].setdefault("merged", []).append(f"{part} from {earlier['settings']['command']}")
        seed, peer = report["seed"], report["peer"]
    # The flat keys other tools read.
    report.update({"test_neg_elbo": seed.get("test_neg_elbo"), "test_kl": seed.get("test_kl"),
                   "test_ppl": seed.get("test_ppl"), "tokens_per_s": seed.get("words_per_s"),
                   "peer_tokens_per_s": peer.get("tokens_per_s"),
                   "peer_test_neg_elbo": peer.get("test_neg_elbo"), "peer_test_kl": peer.get("test_kl"),
                   "ratio": report["seed"].get("ratio_words_per_s")})
    # IW NLL, MI and active units: of the default model where it ran (the goal), else the seed's.
    best = report.get("default", report["seed"])
    report.update({key: best.get(key) for key in ("test_nll", "test_nll_k", "mi", "active_units")})
    print_report(report)
    write_results(out, report)


def print_report(r: dict) -> None:
    s, p = r["seed"], r["peer"]
    print(f"\n{'':<22}{'words/s':>10}{'test -ELBO':>12}{'rec':>9}{'KL':>7}{'ppl':>9}")
    if s:
        print(f"{'vaekit text-seed':<22}{s['words_per_s']:>10,.0f}{s['test_neg_elbo']:>12.2f}"
              f"{s['test_rec']:>9.2f}{s['test_kl']:>7.2f}{s['test_ppl']:>9.1f}")
    if "tokens_per_s" in p:
        print(f"{'keras peer':<22}{p['tokens_per_s']:>10,.0f}{p['test_neg_elbo']:>12.2f}"
              f"{p['test_rec_nats_per_sentence']:>9.2f}{p['test_kl']:>7.2f}{'-':>9}")
        print(f"ratio (words/s): {s['words_per_s'] / p['tokens_per_s']:.2f}x")
    elif p:
        print(f"keras peer failed: {p.get('error', '')[-300:]}")
    if "default" in r:
        d = r["default"]
        print(f"{'vaekit text-rnn':<22}{d['words_per_s']:>10,.0f}{d['test_neg_elbo']:>12.2f}{d['test_rec']:>9.2f}"
              f"{d['test_kl']:>7.2f}{d['test_ppl']:>9.1f}")
    for name in ("seed", "default"):
        m = r.get(name, {})
        if "test_nll" in m:
            print(f"{m['model']}: test NLL <= {m['test_nll']:.2f} nats/sentence (k={m['test_nll_k']}, "
                  f"{m['test_nll_sentences']} sentences, ppl {m['test_ppl_iw']:.1f}), MI {m['mi']:.2f}, "
                  f"{m['active_units']} active units, KL {m['test_kl']:.2f}")


if __name__ == "__main__":
    main()

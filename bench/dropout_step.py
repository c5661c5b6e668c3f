"""One text-rnn training step with vaekit's CPU dropout mask (models/text_rnn.fast_dropout) vs F.dropout.

The model is the PTB recipe's (1024-unit decoder, tied embeddings, dropout 0.6), without and with
weight drop 0.5 on the decoder's recurrent matrix; the step is the Trainer's (autocast, ELBO, backward,
Adam) on gru_step.py's batch (32 sentences padded to T = 50, PTB-like lengths). The two paths alternate
within each repeat, their order flipping every repeat; figures are medians over repeats and the ratio
F.dropout time / fast time. The machine is shared: read the ratios, not the absolute times.

    python bench/dropout_step.py            # 7 repeats of 5 steps per configuration
    python bench/dropout_step.py --quick    # 3 repeats of 3 steps
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gru_step import make_batch, time_steps  # noqa: E402
from peers import REPO, machine, write_results  # noqa: E402

RESULTS = REPO / "bench" / "results" / "dropout_step.json"


def compare(weight_drop: float, precision: str, threads: int, args) -> dict:
    import torch
    from torch.nn import functional as F

    import vaekit.models.text_rnn as text_rnn
    from vaekit.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("text-rnn", vocab_size=args.vocab, max_len=args.steps, decoder_dim=1024, dropout=0.6,
                        word_dropout=0.0, weight_drop=weight_drop).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = make_batch(args.batch, args.steps, args.vocab)
    fast = text_rnn.fast_dropout  # the Dropout module and weight drop both call it by this name
    paths = {"F.dropout": lambda t, p: F.dropout(t, p), "fast": fast}
    times = {name: [] for name in paths}
    try:
        for path in paths.values():  # warm-up, both paths
            text_rnn.fast_dropout = path
            time_steps(model, optimizer, x, precision, 1)
        for rep in range(args.repeats):
            for name in (list(paths) if rep % 2 == 0 else list(paths)[::-1]):
                text_rnn.fast_dropout = paths[name]
                times[name].append(time_steps(model, optimizer, x, precision, args.n))
    finally:
        text_rnn.fast_dropout = fast
    ref, new = statistics.median(times["F.dropout"]), statistics.median(times["fast"])
    pairs = sorted(a / b for a, b in zip(times["F.dropout"], times["fast"]))
    result = {"f_dropout_ms": 1000 * ref, "fast_ms": 1000 * new, "speedup": ref / new,
              "paired_speedup_median": statistics.median(pairs), "paired_speedup_range": [pairs[0], pairs[-1]],
              "all_ms": {k: [round(1000 * t, 2) for t in v] for k, v in times.items()}}
    print(f"weight drop {weight_drop}, {precision}, {threads} thread(s): F.dropout {1000 * ref:.0f} ms, "
          f"fast {1000 * new:.0f} ms per step -> {ref / new:.2f}x (paired median "
          f"{result['paired_speedup_median']:.2f}x, range {pairs[0]:.2f}-{pairs[-1]:.2f})", flush=True)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--n", type=int, default=5, help="steps per timing")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=50, help="T, the padded sentence length")
    p.add_argument("--vocab", type=int, default=10_002)
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.n = 3, 3
    report = {"settings": vars(args), "command": " ".join(["python bench/dropout_step.py", *(argv or sys.argv[1:])]),
              "machine": machine(), "results": {}}
    for weight_drop in (0.0, 0.5):
        for threads in args.threads:
            key = f"wd{weight_drop}_{args.precision}_{threads}t"
            report["results"][key] = compare(weight_drop, args.precision, threads, args)
    write_results(RESULTS.with_name("dropout_step-quick.json") if args.quick else RESULTS, report)


if __name__ == "__main__":
    main()

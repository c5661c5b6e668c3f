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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402
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
    # The Dropout module and weight drop both call text_rnn.fast_dropout by that name.
    paths = {"F.dropout": F.dropout, "fast": text_rnn.fast_dropout}
    times = ab.interleaved(text_rnn, "fast_dropout", paths,
                           lambda k: time_steps(model, optimizer, x, precision, k), args.repeats, args.n, 1)
    found = ab.compare(times, "F.dropout", "fast")
    ref, new = found.pop("ref_s"), found.pop("new_s")
    result = {"f_dropout_ms": 1000 * ref, "fast_ms": 1000 * new, **found}
    print(f"weight drop {weight_drop}, {precision}, {threads} thread(s): F.dropout {1000 * ref:.0f} ms, "
          f"fast {1000 * new:.0f} ms per step {ab.describe(result)}", flush=True)
    return result


def main(argv=None) -> None:
    p = ab.step_parser(__doc__.split("\n")[0], repeats=7, n=5, threads=[2])
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

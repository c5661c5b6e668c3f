"""One text-rnn training step on the AMX path: kernels/lstm.py's decoder LSTM against the fp32 nn.LSTM it replaced.

On CPUs with AMX, oneDNN's bf16 LSTM backward is wrong for the 1024-unit decoder, so bf16 training
there ran the decoder's recurrence in fp32 (text_rnn.run_lstm); kernels/lstm.py now runs it with bf16
products and fp32 gates. This times the Trainer's step (autocast bf16, ELBO, backward, Adam) on the PTB
recipe's model (1024-unit decoder, tied embeddings, dropout 0.6, weight drop 0.5) and gru_step.py's
batch (32 sentences padded to T = 50, PTB-like lengths), three decoder paths interleaved:
- "fp32": nn.LSTM's kernel in fp32 (the earlier fix);
- "lstm.py": kernels/lstm.py (now the path);
- "onednn-bf16": nn.LSTM's kernel in bf16, for scale only: on AMX its gradients are wrong.
The AMX path is forced, so the figures exist on any CPU; they mean most where AMX is (see "amx").

    python bench/lstm_step.py            # 7 repeats of 5 steps per path
    python bench/lstm_step.py --quick    # 3 repeats of 3 steps
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402
from gru_step import make_batch, time_steps  # noqa: E402
from peers import REPO, machine, write_results  # noqa: E402

RESULTS = REPO / "bench" / "results" / "lstm_step.json"


def kernel_path(dtype):
    """nn.LSTM's own kernel (what nn.LSTM calls) with its inputs and weights in `dtype`."""
    import torch

    def run(x, state, *weights):
        out, h, c = torch._VF.lstm(x.to(dtype), tuple(s.to(dtype) for s in state), [w.to(dtype) for w in weights],
                                   True, 1, 0.0, True, False, True)
        return out, (h, c)

    return run


def compare(threads: int, paths: dict, args) -> dict:
    """The three paths interleaved at `threads` threads: ms a step and the fp32 / lstm.py ratio."""
    import torch

    import vaekit.models.text_rnn as text_rnn
    from vaekit.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("text-rnn", vocab_size=args.vocab, max_len=args.steps, decoder_dim=1024, dropout=0.6,
                        word_dropout=0.0, weight_drop=0.5).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = make_batch(args.batch, args.steps, args.vocab)
    times = ab.interleaved(text_rnn, "bf16_lstm", paths,
                           lambda k: time_steps(model, optimizer, x, "bf16", k), args.repeats, args.n, 1)
    found = ab.compare({k: times[k] for k in ("fp32", "lstm.py")}, "fp32", "lstm.py")
    ref, new = found.pop("ref_s"), found.pop("new_s")
    onednn = sorted(times["onednn-bf16"])[len(times["onednn-bf16"]) // 2]
    result = {"fp32_ms": 1000 * ref, "lstm_py_ms": 1000 * new, "onednn_bf16_ms": 1000 * onednn, **found}
    result["all_ms"]["onednn-bf16"] = [round(1000 * t, 2) for t in times["onednn-bf16"]]
    print(f"{threads} thread(s): fp32 {1000 * ref:.0f} ms, lstm.py {1000 * new:.0f} ms per step "
          f"{ab.describe(result)}; oneDNN bf16 (wrong on AMX) {1000 * onednn:.0f} ms", flush=True)
    return result


def main(argv=None) -> None:
    p = ab.step_parser(__doc__.split("\n")[0], repeats=7, n=5, threads=[2])
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.n = 3, 3
    import torch

    import vaekit.models.text_rnn as text_rnn

    report = {"settings": vars(args), "command": " ".join(["python bench/lstm_step.py", *(argv or sys.argv[1:])]),
              "machine": machine(), "amx": bool(text_rnn._amx_cpu()), "results": {}}
    text_rnn._amx_cpu = lambda: True  # the path under test, whatever this CPU is
    paths = {"fp32": kernel_path(torch.float32), "lstm.py": text_rnn.bf16_lstm,
             "onednn-bf16": kernel_path(torch.bfloat16)}
    for threads in args.threads:
        report["results"][f"{threads}t"] = compare(threads, paths, args)
    write_results(RESULTS.with_name("lstm_step-quick.json") if args.quick else RESULTS, report)


if __name__ == "__main__":
    main()

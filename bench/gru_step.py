"""One text-seed training step with the fused BiGRU (kernels/gru.py) vs nn.GRU, on CPU.

The step is the Trainer's: forward under the precision's autocast, ELBO loss, backward, Adam. Batch 32
sentences padded to T = 50 (lengths drawn around PTB's mean of about 22 tokens, one of length 50),
vocabulary 10,002. The two paths alternate within each repeat (their order flips every repeat), at 1
and at 2 torch threads, in fp32 and bf16 autocast; the figures are medians over repeats and the
ratio nn.GRU time / fused time. The machine is shared: read the ratios, not the absolute times.

    python bench/gru_step.py            # 9 repeats of 10 steps per configuration
    python bench/gru_step.py --quick    # 3 repeats of 4 steps
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402
from peers import REPO, machine, write_results  # noqa: E402

RESULTS = REPO / "bench" / "results" / "gru_step.json"


def make_batch(batch: int, steps: int, vocab: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = (torch.randn(batch, generator=g) * 10 + 22).round().clamp(3, steps).long()  # with <eos>
    lengths[0] = steps  # the batch is padded to T
    x = torch.randint(4, vocab, (batch, steps), generator=g)
    x[:, :][torch.arange(steps) >= lengths[:, None]] = 0  # PAD
    x[torch.arange(batch), lengths - 1] = 3  # <eos>
    return x


def time_steps(model, optimizer, x, precision: str, n: int) -> float:
    """Seconds per training step, over n steps."""
    import torch

    from vaekit.objectives import training_loss
    from vaekit.training import autocast_context

    started = time.perf_counter()
    for _ in range(n):
        with autocast_context(torch.device("cpu"), precision):
            terms = model(x)
        loss = training_loss(terms, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / n


def compare(precision: str, threads: int, args) -> dict:
    """Interleaved A/B of the two paths; medians and the speed ratio."""
    import torch

    import vaekit.models.text_seed as text_seed
    from vaekit.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("text-seed", vocab_size=args.vocab, max_len=args.steps).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = make_batch(args.batch, args.steps, args.vocab)
    times = ab.interleaved(text_seed, "use_fused", {"nn.GRU": lambda gru, h: False, "fused": text_seed.use_fused},
                           lambda k: time_steps(model, optimizer, x, precision, k), args.repeats, args.n, 2)
    found = ab.compare(times, "nn.GRU", "fused")
    ref, fused = found.pop("ref_s"), found.pop("new_s")
    tokens = int((x != 0).sum())
    result = {"nn_gru_ms": 1000 * ref, "fused_ms": 1000 * fused, **found, "tokens_per_step": tokens,
              "nn_gru_words_per_s": tokens / ref, "fused_words_per_s": tokens / fused}
    print(f"{precision} {threads} thread(s): nn.GRU {1000 * ref:.1f} ms, fused {1000 * fused:.1f} ms per step "
          f"{ab.describe(result)}", flush=True)
    return result


def main(argv=None) -> None:
    args = ab.step_parser(__doc__.split("\n")[0], repeats=9, n=10, threads=[1, 2]).parse_args(argv)
    if args.quick:
        args.repeats, args.n = 3, 4
    import torch

    precisions = ["fp32"] + (["bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else [])
    report = {"settings": vars(args), "command": " ".join(["python bench/gru_step.py", *(argv or sys.argv[1:])]),
              "machine": machine(), "results": {}}
    for precision in precisions:
        for threads in args.threads:
            report["results"][f"{precision}_{threads}t"] = compare(precision, threads, args)
    write_results(RESULTS.with_name("gru_step-quick.json") if args.quick else RESULTS, report)


if __name__ == "__main__":
    main()

"""Data-parallel training over several processes: PyTorch's DistributedDataParallel (DDP) on the
torch.distributed engine, launched by `torchrun` or by `vaekit train ... --nproc N`.

What the Trainer does differently with W > 1 processes (it calls the small hooks below):

- `batch_size` is the GLOBAL batch. Every process walks the same seeded permutation and takes a
  near-even share of each global batch (data.iterate_batches), and each loss is weighted by its
  share, so DDP's gradient average is exactly the gradient of the global batch's mean loss. The
  steps, the KL schedule and the learning-rate-to-batch relation are those of one process with the
  same batch_size. (Free bits floor the KL of each share rather than of the global batch.)
- Rank 0 alone writes the run directory (checkpoints, weights, metrics, status, plots, TensorBoard)
  and prints; the other ranks never touch it. Epoch sums (reconstruction, KL, examples) and the
  validation sums are all-reduced, so the metrics cover every example once.
- The checkpoint is world-size independent: weights, optimizer, the shuffle generator at the start
  of the epoch, the number of GLOBAL batches done and the global sums. Each rank's torch RNG (its
  reparameterisation and binarisation noise) is saved too, as rng.torch (rank 0) and
  rng.torch.R. Resuming with the same world size is therefore exact (the same batches, shares and
  noise); resuming with another world size replays the same global batches in the same order but
  ranks that did not exist draw fresh noise (seeded from the seed, rank and step), so it continues
  the same optimisation, not bit for bit the same numbers.
- Ctrl-C: the stop request is agreed across ranks after each step, so every rank stops at the same
  step and the checkpoint is consistent.

The run directory must be on a filesystem every machine sees when resuming on several machines.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from .errors import VaekitError

SUM_KEYS = ("rec", "kl", "n")  # the epoch sums that are all-reduced (seconds stay per rank)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; Dist() is the single-process case (every hook a no-op)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- collectives (no-ops in one process) --------------------------------------------------
    def all_sum(self, sums: dict) -> dict:
        """Sums of SUM_KEYS over all ranks (float64, so counts stay exact)."""
        if not self.active:
            return dict(sums)
        values = torch.tensor([float(sums.get(k, 0.0)) for k in SUM_KEYS], dtype=torch.float64)
        dist.all_reduce(values)
        return {**sums, **dict(zip(SUM_KEYS, values.tolist()))}

    def all_sum_tensor(self, values: torch.Tensor) -> torch.Tensor:
        """A CPU tensor summed over all ranks (float64)."""
        values = values.double()
        if self.active:
            dist.all_reduce(values)
        return values

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank's flag is set (Ctrl-C seen by one process)."""
        if not self.active:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def gather_rng(self) -> list[torch.Tensor]:
        """Every rank's torch RNG state, in rank order (each rank gets the list)."""
        state = torch.get_rng_state()
        if not self.active:
            return [state]
        states: list = [None] * self.world
        dist.all_gather_object(states, state)
        return states

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def on_main(self, fn):
        """Run fn() on rank 0 only and hand its result (or its VaekitError) to every rank."""
        if not self.active:
            return fn()
        payload = [None]
        if self.is_main:
            try:
                payload = [("ok", fn())]
            except VaekitError as e:
                payload = [("error", str(e))]
        dist.broadcast_object_list(payload, src=0)
        status, value = payload[0]
        if status == "error":
            raise VaekitError(value)
        return value


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The torch seed of a rank: rank 0 uses the run's seed, so one process is the W=1 case."""
    return seed if rank == 0 and step == 0 else seed + 1_000_003 * rank + 7919 * step


def setup(device: str = "auto") -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); Dist() otherwise.

    Backend: nccl when training on CUDA, gloo on CPU. Idempotent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if os.environ.get(LAUNCHER_ENV):
        die_with_launcher(int(os.environ[LAUNCHER_ENV]))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(local_rank)  # one GPU per process; "cuda" then means this one
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=30))
    return Dist(rank, world, local_rank)


def wrap(model: torch.nn.Module, ctx: Dist, device: torch.device) -> torch.nn.Module:
    """DDP around the model when there are several processes (it averages the gradients)."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type != "cuda":  # gloo has no SyncBatchNorm: batch norm sees each process's share
        return DistributedDataParallel(model)
    # On GPUs batch norm normalises over the global batch, as in one process. The conversion swaps
    # the layers inside `model` in place (same parameter names, so checkpoints do not change).
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    index = device.index if device.index is not None else ctx.local_rank
    return DistributedDataParallel(model, device_ids=[index])


def share_sizes(global_len: int, world: int) -> list[int]:
    """How many examples of a global batch each rank takes (torch.tensor_split's near-even split)."""
    return [global_len // world + (r < global_len % world) for r in range(world)]


# ---- launching N local processes ---------------------------------------------------------------
CHILD_ENV = "VAEKIT_LAUNCHED"  # set in children of launch_local: errors go to the parent, printed once
LAUNCHER_ENV = "VAEKIT_LAUNCHER_PID"  # the launch_local process its children die with


def die_with_launcher(launcher: int) -> None:
    """Have the kernel kill this worker when its launcher dies (Linux; elsewhere a no-op).

    The workers run in sessions of their own, so a launcher killed with SIGKILL (which it cannot
    pass on) used to leave them training and writing the run directory, beside any `vaekit resume`
    started after it. PR_SET_PDEATHSIG fires when the parent exits; a launcher already gone before
    the call is seen by getppid.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != launcher:
        os._exit(1)


def launch_local(nproc: int, argv: list[str], device: str = "auto") -> int:
    """Run `python -m vaekit.cli ARGV` in nproc processes on this machine; returns the exit code.

    Uses torch's elastic launcher (the engine behind torchrun) with a free local port. When a
    process fails the launcher stops the others; its message is printed once, here.
    """
    if not 2 <= nproc <= 1024:
        raise VaekitError(f"--nproc must be between 2 and 1024, got {nproc}")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda and nproc > torch.cuda.device_count():
        raise VaekitError(f"--nproc {nproc} needs {nproc} GPUs; this machine has {torch.cuda.device_count()}")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if not cuda and "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    os.environ[CHILD_ENV] = "1"
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # we report failures
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"vaekit-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.2)
    try:
        elastic_launch(config, sys.executable)("-m", "vaekit.cli", *argv)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        print(f"vaekit: error: {failure_message(rank, nproc, failure)}", file=sys.stderr)
        return 2 if failure.exitcode == 2 else 1
    except (KeyboardInterrupt, SignalException):
        # Ctrl-C reaches this launcher only (the children run in their own sessions); the elastic
        # agent passes the signal on, and the children stop at the same step and checkpoint.
        print("vaekit: interrupted (all training processes stopped)", file=sys.stderr)
        return 130
    finally:
        os.environ.pop(CHILD_ENV, None)
        os.environ.pop(LAUNCHER_ENV, None)
    return 0


def failure_message(rank: int, nproc: int, failure) -> str:
    """One line for a failed child: its own VaekitError text, or what killed it."""
    message = failure.message if isinstance(failure.message, str) else ""
    if message and failure.exitcode == 2:
        return message
    if failure.exitcode < 0:
        return f"training process {rank} of {nproc} was killed by signal {-failure.exitcode} ({failure.signal_name()})"
    return (f"training process {rank} of {nproc} failed with exit code {failure.exitcode}"
            + (f": {message}" if message and not message.startswith("To enable") else " (its output is above)"))


def report_child_error(message: str) -> bool:
    """In a launched child, hand a VaekitError to the launcher (printed once there).

    Returns True when it was handed over (the child then prints nothing); under plain torchrun
    every rank prints its own message, marked with its rank when that is not 0.
    """
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not (os.environ.get(CHILD_ENV) and error_file):
        return False
    Path(error_file).parent.mkdir(parents=True, exist_ok=True)
    Path(error_file).write_text(json.dumps({"message": message, "timestamp": int(time.time())}))
    return True


def error_prefix() -> str:
    rank = int(os.environ.get("RANK", "0"))
    return f"(rank {rank}) " if int(os.environ.get("WORLD_SIZE", "1")) > 1 and rank else ""

"""`vaekit info RUN`: what a run is (kind, model, data), how far it trained, and which of the outputs it holds
were made from its current weights."""
from __future__ import annotations

import json

from .options import RUN_HELP


def register(subparsers):
    parser = subparsers.add_parser("info", help="what a run is, how far it trained, and whether its outputs are "
                                   "current")
    parser.add_argument("run", help=RUN_HELP)
    return parser


def run(args) -> None:
    for line in describe(args.run):
        print(line)


def describe(path) -> list[str]:
    """The lines `vaekit info` prints."""
    from pathlib import Path

    from .. import runs, stamps

    path = Path(path)
    config = runs.read_config(path)
    model = config.get("model", {})
    options = model.get("config", {})
    data = config.get("data", {})
    train = config.get("train", {})
    status = _read(path / runs.STATUS) or {}
    history = _history(path / runs.METRICS)
    lines = [f"run:      {path}",
             f"kind:     {config.get('kind')}",
             f"model:    {model.get('name')} (latent dimension {options.get('latent_dim', '?')})",
             "data:     " + str(data.get("data")) + "".join(f", {k} {data[k]}" for k in ("val_data", "data_dir")
                                                           if data.get(k))]
    if config.get("refined_from"):
        lines.append(f"refined from: {config['refined_from']}")
    # status.json holds the epochs the run trains to (train.epochs, or more for min_steps on a small data set)
    total = status.get("epochs", train.get("epochs", "?"))
    steps = f", at least {train['min_steps']} steps" if train.get("min_steps") else ""
    epochs = f"{status.get('epoch', len(history))} of {total} epochs{steps}"
    lines.append(f"status:   {status.get('state', 'unknown')}, {epochs}"
                 + (f" ({status['message']})" if status.get("message") else ""))
    if history and "best_epoch" in history[-1]:
        best = history[history[-1]["best_epoch"] - 1]
        lines.append(f"weights:  of epoch {best['epoch']} (best validation -ELBO {best['val_loss']:.2f})")
    elif history and "val_loss" in history[-1]:
        lines.append(f"weights:  of epoch {history[-1]['epoch']} (validation -ELBO {history[-1]['val_loss']:.2f})")
    if not (path / runs.WEIGHTS).exists():
        lines.append("outputs:  none (the run has no weights yet)")
        return lines
    lines.append(f"weights sha256: {stamps.weights_digest(path)[:16]}")
    found = stamps.status(path)
    lines.append("outputs:" + ("  none yet" if not found else ""))
    for output, state in found:
        lines.append(f"  {output.name + ('/' if output.is_dir() else ''):<28} {state}")
    return lines


def _read(path):
    from .. import runs
    from ..errors import VaekitError

    try:
        value = runs.read_json(path)
    except VaekitError:
        return None
    return value if isinstance(value, dict) else None


def _history(path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []

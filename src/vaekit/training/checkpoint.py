"""The checkpoint's layout: one safetensors file holding all that an exact resume needs.

Tensors: `model.<name>` (the weights), `optim.<parameter index>.<name>` (Adam's moments and step),
`rng.torch` (rank 0's noise stream), `rng.torch.<rank>` (the other ranks'), `rng.shuffle_epoch_start`,
`rng.cuda`, and `<state_key>.<name>` for each callback's tensors (weight averaging's mean:
`average.<name>`). Metadata (JSON strings): `trainer` (TrainState), `param_groups`, `scaler`, and
`callbacks` ({state_key: the callback's other values}). A callback's state_key is therefore
never model, optim or rng.
"""
from __future__ import annotations

import json

import torch


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, str]:
    """The optimizer's per-parameter state as tensors, and its param_groups as JSON."""
    opt = optimizer.state_dict()
    tensors = {}
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            tensors[f"optim.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, json.dumps(opt["param_groups"])


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, param_groups: str, device: torch.device) -> None:
    """Restore what optimizer_tensors saved into `optimizer` (built over the same parameters)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            like = params[int(pid)]
            if name != "step" and value.shape == like.shape:
                # In the parameter's own memory format (channels-last conv weights): the fused
                # Adam kernel walks moments and parameters in memory order, so they must agree.
                value = torch.empty_like(like, dtype=value.dtype).copy_(value)
            elif name != "step":
                value = value.to(device)
            state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(param_groups)})


def callback_tensors(callbacks) -> tuple[dict, str]:
    """Every callback's state_dict(): its tensors named `<state_key>.<name>`, and the other values
    as one JSON string keyed by state_key (each stateful callback listed, even with tensors only)."""
    tensors, values = {}, {}
    for cb in callbacks:
        state = cb.state_dict() if hasattr(cb, "state_dict") else {}
        if not state:
            continue
        key = cb.state_key
        tensors.update({f"{key}.{name}": v for name, v in state.items() if torch.is_tensor(v)})
        values[key] = {name: v for name, v in state.items() if not torch.is_tensor(v)}
    return tensors, json.dumps(values)


def callback_states(tensors: dict, meta: dict, trainer: dict, average_from: int) -> dict[str, dict]:
    """state_key -> the state a callback saved, as state_dict() returned it.

    A checkpoint from before the callbacks (no `callbacks` metadata) held weight averaging's
    count in the trainer's JSON as `averaged` (popped from `trainer` here), or, older still,
    nothing: then the count is what average_from implies."""
    if "callbacks" in meta:
        values = json.loads(meta["callbacks"])
        return {key: {name[len(key) + 1:]: v for name, v in tensors.items() if name.startswith(key + ".")} | own
                for key, own in values.items()}
    averaged = trainer.pop("averaged", None)
    average = {name[len("average."):]: v for name, v in tensors.items() if name.startswith("average.")}
    if not average:
        return {}
    epochs = averaged if averaged is not None else max(1, trainer["epoch"] + 1 - average_from)
    return {"average": {**average, "epochs": epochs}}

"""A layer table like Keras' `model.summary()`: layer, output shape, parameter count."""
from __future__ import annotations

import torch
from torch import nn


def _shape(out) -> str:
    if isinstance(out, (tuple, list)) and out:
        out = out[0]  # recurrent layers return (output, hidden)
    if torch.is_tensor(out):
        return "(" + ", ".join(["B", *map(str, out.shape[1:])]) + ")"
    return "-"


@torch.no_grad()
def model_summary(model) -> str:
    """Run one example batch through encode and decode, recording every leaf layer's output."""
    rows: list[tuple[str, str, int]] = []
    hooks, seen = [], set()
    for name, module in model.named_modules():
        if name and not list(module.children()):
            def hook(mod, inputs, output, name=name):
                # A layer used twice (an embedding shared by encoder and decoder) counts once.
                params = 0 if id(mod) in seen else sum(p.numel() for p in mod.parameters(recurse=False))
                label = f"{name} ({type(mod).__name__})" + (", shared" if id(mod) in seen else "")
                seen.add(id(mod))
                rows.append((label, _shape(output), params))
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        x = model.example_input(2)
        posterior = model.encode(x)
        rows.append(("-> z_mean, z_log_var", f"(B, {model.latent_dim})", 0))
        model.log_likelihood(x, posterior.mean)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    counted = sum(r[2] for r in rows)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    extra = total - counted  # parameters outside leaf layers (e.g. a learned likelihood scale)
    if extra:
        rows.append(("other parameters (likelihood)", "-", extra))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"Model: {model.name} ({type(model).__name__}, {model.kind})",
             f"{'Layer (type)':<{width}}{'Output shape':<24}{'Param #':>10}", "-" * (width + 34)]
    lines += [f"{n:<{width}}{s:<24}{p:>10,}" for n, s, p in rows]
    lines += ["-" * (width + 34), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    if getattr(model, "summary_note", None):  # what the model uses beyond its own weights
        lines.append(model.summary_note)
    return "\n".join(lines)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

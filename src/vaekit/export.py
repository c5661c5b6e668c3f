"""ONNX export of a run's encoder and decoder, so a trained model serves where PyTorch is absent.

    vaekit export RUN --onnx [--out DIR]          (default DIR: RUN/onnx)

Writes into DIR, every graph with a dynamic batch axis ("batch"):

    encoder.onnx   x -> z_mean, z_log_var (the posterior's parameters; Kingma & Welling 2014)
    image models:  decoder.onnx       z -> x_mean, the decoded mean in data space ([0, 1] pixels)
    conv-pixel:    decoder.onnx       z -> features (B, P, H, W) of the upsampling decoder
                   pixel_logits.onnx  x, features -> the likelihood's parameters of every pixel given the
                   pixels before it: Bernoulli logits (B, C, H, W), or for 8-bit runs the logistic
                   mixture's (B, C * 3 * K, H, W) as distributions.DiscretizedLogistic.split reads them
                   (draw pixel by pixel in raster order, as PixelVAE.draw does)
    tabular:       decoder.onnx       z -> x_mean in standardised units; standardize.json beside it
                   holds each column's mean and std (x = mean + std * x_std); with categorical columns
                   the numeric ones come first, then each category's probabilities (standardize.json's
                   "categories", in order), and the encoder takes them one-hot
    text-seed:     decoder.onnx       z -> logits (B, max_len, V) for every position at once
    text-rnn:      decoder_init.onnx  z -> h, c (the LSTM decoder's initial state)
                   decoder_step.onnx  token (B, 1), z, h, c -> logits (B, V), h, c
    text-minilm:   encoder.onnx takes all-MiniLM-L6-v2's sentence embedding (B, 384: mean-pooled and
                   unit length, as sentence-transformers computes it) instead of tokens, since the frozen
                   MiniLM stays in its own package; decoder_init and decoder_step as text-rnn
    manifest.json  the graphs' inputs and outputs (names, shapes, dtypes), the model and its sizes,
                   the special token ids; tokenizer.json beside it for text runs

Greedy decoding of a text-rnn run in onnxruntime: token = BOS (2); h, c = decoder_init(z); repeat
max_len times: logits, h, c = decoder_step(token, z, h, c); token = argmax(logits), stop at EOS (3).
The README has a complete example. Graphs use the TorchScript-based exporter (torch.onnx.export with
dynamo=False, opset 17): it needs the onnx package but not onnxscript, and traces the small wrapper
modules below, which avoid data-dependent Python control flow so the batch axis stays dynamic.
"""
from __future__ import annotations

import io
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import modalities, runs, stamps
from .errors import VaekitError

OPSET = 17
FORMAT = "vaekit-onnx"
PAD, BOS, EOS = 0, 2, 3  # the tokenizer's padding, <bos> and <eos> ids


@dataclass
class Graph:
    """One module to export, with example inputs (name -> tensor) and its output names."""

    name: str
    module: nn.Module
    inputs: dict[str, Tensor]
    outputs: list[str]
    batch_axes: dict[str, int] = field(default_factory=dict)  # name -> batch axis when not 0


class Encoder(nn.Module):
    """x -> (z_mean, z_log_var) through the model's own encode(), or another of its methods that
    returns the posterior (text-minilm's posterior_of_embedding: its input is MiniLM's embedding)."""

    def __init__(self, model, method: str = "encode"):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        posterior = getattr(self.model, self.method)(x)
        return posterior.mean, posterior.log_var  # (B, D) each


class PixelLogits(nn.Module):
    """x, features -> conv-pixel's per-pixel likelihood parameters (B, C * params_per_channel, H, W)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, features: Tensor) -> Tensor:
        return self.model.pixel_logits(x, features)


class ImageDecoder(nn.Module):
    """z -> decoded mean E[x | z], (B, C, H, W)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z: Tensor) -> Tensor:
        return self.model.likelihood.mean(self.model.decode(z))


class Decode(nn.Module):
    """z -> the model's decode(z) as it is: text-seed's logits (B, max_len, V), conv-pixel's
    features (B, P, H, W)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z: Tensor) -> Tensor:
        return self.model.decode(z)


class LengthAwareEncoder(nn.Module):
    """The packed bidirectional LSTM encoder of text-rnn without packing, which ONNX lacks.

    Same numbers as pack_padded_sequence: the forward direction's state at each sentence's last
    word, and the backward direction run over the sentence reversed within its length. Padding
    is never read. tokens (B, T) -> z_mean, z_log_var (B, D).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        lstm = model.encoder
        self.forward_lstm, self.backward_lstm = (self._direction(lstm, s) for s in ("", "_reverse"))

    @staticmethod
    def _direction(lstm: nn.LSTM, suffix: str) -> nn.LSTM:
        one = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        one.load_state_dict({f"{k}_l0": getattr(lstm, f"{k}_l0{suffix}")
                             for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        return one

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.model.embedding(tokens)  # (B, T, E)
        last = ((tokens != PAD).sum(1).clamp(min=1) - 1).view(-1, 1, 1)  # (B, 1, 1) index of last word
        steps = torch.arange(tokens.shape[1], device=tokens.device).view(1, -1)  # (1, T)
        reverse = (last.view(-1, 1) - steps).clamp(min=0)  # (B, T): last, ..., 0, then 0s (never read)
        reversed_emb = emb.gather(1, reverse.unsqueeze(-1).expand(-1, -1, emb.shape[-1]))
        out_f, _ = self.forward_lstm(emb)  # (B, T, H)
        out_b, _ = self.backward_lstm(reversed_emb)  # (B, T, H)
        h = torch.cat([out.gather(1, last.expand(-1, 1, out.shape[-1])).squeeze(1)
                       for out in (out_f, out_b)], -1)  # (B, 2H)
        return self.model.to_mean(h), self.model.to_log_var(h)


class DecoderInit(nn.Module):
    """z -> the autoregressive decoder's initial state h, c (1, B, H)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.init_state(z)


class DecoderStep(nn.Module):
    """One decoding step: token (B, 1), z (B, D), h, c (1, B, H) -> logits (B, V), h, c."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, z: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, (h, c) = self.model.step(token, z, (h, c))
        return logits[:, -1], h, c


def graphs(model, batch: int = 2) -> list[Graph]:
    """What to export for `model`: picked by what the model can do, as generate.py decodes."""
    z = torch.randn(batch, model.latent_dim)
    x = model.example_input(batch)
    if hasattr(model, "pixel_logits"):  # autoregressive pixels: features once, then logits per pixel
        with torch.no_grad():
            features = model.decode(z)
        return [Graph("encoder", Encoder(model), {"x": x}, ["z_mean", "z_log_var"]),
                Graph("decoder", Decode(model), {"z": z}, ["features"]),
                Graph("pixel_logits", PixelLogits(model), {"x": x, "features": features}, ["logits"])]
    if x.is_floating_point():  # continuous inputs (images, rows, ...): x -> z, z -> decoded mean
        return [Graph("encoder", Encoder(model), {"x": x}, ["z_mean", "z_log_var"]),
                Graph("decoder", ImageDecoder(model), {"z": z}, ["x_mean"])]
    if not hasattr(model, "step"):
        return [Graph("encoder", Encoder(model), {"tokens": x}, ["z_mean", "z_log_var"]),
                Graph("decoder", Decode(model), {"z": z}, ["logits"])]
    with torch.no_grad():
        h, c = model.init_state(z)
    token = torch.full((batch, 1), BOS, dtype=torch.long)
    if hasattr(model, "posterior_of_embedding"):  # a frozen sentence encoder in front: its embedding is the input
        embedding = model.sentence_embeddings(x)  # (B, 384)
        encoder = Graph("encoder", Encoder(model, "posterior_of_embedding"), {"sentence_embedding": embedding},
                        ["z_mean", "z_log_var"])
    else:
        encoder = Graph("encoder", LengthAwareEncoder(model), {"tokens": x}, ["z_mean", "z_log_var"])
    return [encoder,
            Graph("decoder_init", DecoderInit(model), {"z": z}, ["h", "c"], {"h": 1, "c": 1}),
            Graph("decoder_step", DecoderStep(model), {"token": token, "z": z, "h": h, "c": c},
                  ["logits", "h_next", "c_next"], {"h": 1, "c": 1, "h_next": 1, "c_next": 1})]


def to_onnx(graph: Graph) -> bytes:
    """The graph as ONNX bytes, with a dynamic batch axis on every input and output."""
    axes = {name: {graph.batch_axes.get(name, 0): "batch"} for name in [*graph.inputs, *graph.outputs]}
    if "tokens" in graph.inputs:
        axes["tokens"][1] = "length"  # sentences of any length
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        try:
            torch.onnx.export(graph.module.eval(), tuple(graph.inputs.values()), buffer, dynamo=False,
                              input_names=list(graph.inputs), output_names=graph.outputs,
                              dynamic_axes=axes, opset_version=OPSET)
        except (ModuleNotFoundError, torch.onnx.OnnxExporterError) as e:
            if isinstance(e, torch.onnx.OnnxExporterError) and "not installed" not in str(e):
                raise
            raise VaekitError(f"ONNX export needs the onnx package: pip install 'vaekit[export]' ({e})") from None
    return buffer.getvalue()


def describe(graph: Graph, outputs: tuple) -> dict:
    def spec(name, t, axis):
        shape = ["batch" if i == axis else n for i, n in enumerate(t.shape)]
        if name == "tokens":
            shape[1] = "length"
        return {"name": name, "shape": shape, "dtype": str(t.dtype).removeprefix("torch.")}

    return {"file": f"{graph.name}.onnx",
            "inputs": [spec(n, t, graph.batch_axes.get(n, 0)) for n, t in graph.inputs.items()],
            "outputs": [spec(n, t, graph.batch_axes.get(n, 0)) for n, t in zip(graph.outputs, outputs)]}


def export_onnx(run_path: str | Path, out: str | Path | None = None, overwrite: bool = False) -> dict:
    """Export a run's encoder and decoder to ONNX in `out` (default RUN/onnx); returns the manifest."""
    from . import api

    run = api.load(run_path)
    default = out is None
    out = Path(out) if out is not None else run.path / "onnx"
    # RUN/onnx made from earlier weights (the run trained further) is replaced: it no longer is this run's.
    stale = default and (out / "manifest.json").is_file() and not stamps.matches(stamps.read(out), run.path)
    overwrite = overwrite or stale
    if out.exists() and not out.is_dir():  # --overwrite replaces files in a folder, never a file by one
        raise VaekitError(f"{out} is a file; --out takes a folder for the graphs")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise VaekitError(f"{out} exists and is not empty; pass --overwrite to replace its files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VaekitError(f"cannot create {out}: {e.strerror or e}") from None
    manifest = export_model(run.model, out)
    for name in run.modality.run_files:  # tokenizer.json; standardize.json (tabular graphs work in standardised units)
        shutil.copyfile(run.path / name, out / name)
        manifest[Path(name).stem] = name
    manifest["run"] = str(run.path)
    manifest[stamps.KEY] = stamps.of_run(run.path)  # which weights the graphs hold (vaekit info: still current?)
    runs.write_json(out / "manifest.json", manifest)
    return manifest


def export_model(model, out: Path) -> dict:
    """Write each of the model's graphs to out/NAME.onnx; returns the manifest (not yet written)."""
    from .version import __version__

    model = model.cpu().float().eval().to(memory_format=torch.contiguous_format)
    manifest = {"format": FORMAT, "format_version": 1, "vaekit_version": __version__, "opset": OPSET,
                "model": model.name, "kind": model.kind, "latent_dim": model.latent_dim,
                "model_config": model.config_dict(), "graphs": {}}
    manifest.update(modalities.get(model.kind).export_manifest(model))
    torch.manual_seed(0)  # the example inputs only fix shapes; seeded so exports are reproducible
    for graph in graphs(model):
        with torch.no_grad():
            outputs = graph.module.eval()(*graph.inputs.values())
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        runs.atomic_write(out / f"{graph.name}.onnx", to_onnx(graph))
        manifest["graphs"][graph.name] = describe(graph, outputs)
    return manifest


def sentences(batch: int, length: int, vocab_size: int) -> Tensor:
    """Random token ids (batch, length): sentences of lengths 1..length ending in <eos>, then padding."""
    tokens = torch.randint(4, vocab_size, (batch, length))
    lengths = torch.randint(1, length + 1, (batch,))
    lengths[0] = length  # one sentence fills the width
    steps = torch.arange(length).view(1, -1)
    tokens = tokens.masked_fill(steps == lengths.view(-1, 1) - 1, EOS)
    return tokens.masked_fill(steps >= lengths.view(-1, 1), PAD)


def max_difference(model, folder: str | Path, batch: int = 5, seed: int = 1) -> dict[str, float]:
    """Largest |onnxruntime - PyTorch| over every output of every exported graph, on fresh inputs
    of another batch size (and sentence length) than the export's examples. Needs onnxruntime."""
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise VaekitError("checking the export needs onnxruntime: pip install 'vaekit[export]'") from None
    torch.manual_seed(seed)
    model = model.cpu().float().eval()
    result = {}
    for graph in graphs(model, batch):
        if "tokens" in graph.inputs:  # longer sentences than at export, of different lengths
            graph.inputs["tokens"] = sentences(batch, 12, model.config.vocab_size)
        session = ort.InferenceSession(str(Path(folder) / f"{graph.name}.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: t.numpy() for n, t in graph.inputs.items()})
        # The encoder is checked against the model's own encode (packed LSTM for text-rnn).
        reference = Encoder(model) if graph.name == "encoder" and "tokens" in graph.inputs else graph.module
        with torch.no_grad():
            want = reference(*graph.inputs.values())
        want = want if isinstance(want, tuple) else (want,)
        result[graph.name] = max(float(np.abs(g - w.float().numpy()).max()) for g, w in zip(got, want))
    return result

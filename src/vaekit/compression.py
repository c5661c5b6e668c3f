"""Lossless compression with a trained VAE: bits-back coding with asymmetric numeral systems.

BB-ANS (Townsend, Bird & Barber 2019, "Practical lossless compression with latent variables using
bits back coding") turns a latent-variable model's ELBO into a real code. For each example x, on an
ANS stack (last in, first out):

    encode: pop z with q(z | x)   -> push x with p(x | z)   -> push z with p(z)
    decode: pop z with p(z)       -> pop x with p(x | z)    -> push z with q(z | x)

The pop with q "gets back" -log q(z | x) bits, so each example costs about -ELBO bits, and the
decoder rebuilds exactly the stack the encoder started from. z lives on a grid of width 2^-8 per
dimension (the quantised Gaussians of `constriction`); the likelihood codes images as Bernoulli
pixels or discretised-logistic 8-bit levels, and sentences as the autoregressive decoder's
categorical distribution over the vocabulary, word by word.

Examples are cut into up to 64 independent chains (one ANS stack each, BB-ANS "chaining" within a
chain) so that the model runs on a batch of one example per chain. Each chain starts from fixed
pseudo-random words (the "initial bits" of BB-ANS); the words the first pop never reached are cut
from the file, and the decoder checks that it ends with exactly the rest of them.

Determinism: the decoder must compute the same probabilities as the encoder, to the bit. Every
probability is made by the same procedure on both sides (same batches, the pixel decoder walked
pixel by pixel and the text decoder word by word on both sides), in fp32 on the CPU with one
thread, and rounded to a grid of 2^-16 in float64 before it reaches the coder. On one machine and
torch build this holds across processes and thread counts; across CPUs with other vector units,
torch versions or a GPU it may not, and a SHA-256 of the data in the header turns any such mismatch
into an error instead of wrong data.

File format (all integers little-endian):
    MAGIC (8 bytes) | format version (u16) | header length (u32) | header (JSON, UTF-8)
    | chain words (u32 each, chains one after another) | SHA-256 of everything before it (32 bytes)
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .errors import VaekitError

MAGIC = b"VAEKITZ\x00"
FORMAT_VERSION = 1
LATENT_BIN = 2.0 ** -8  # width of the latent grid
LATENT_LIMIT = 4096  # grid points on each side of 0: z in [-16, 16]
PARAM_GRID = 2.0 ** -16  # every parameter reaching the coder is rounded to this grid (float64)
MAX_CHAINS = 64
EXAMPLES_PER_CHAIN = 150  # below MAX_CHAINS * this, fewer chains: each costs its initial bits once
DIGEST_CHARS = 32  # SHA-256 digests in the header cut to 128 bits: ample to tell runs and data apart
SEED_WORDS_PER_DIM = 1  # initial 32-bit words per latent dimension (a pop takes at most 24 bits)


def _constriction():
    try:
        import constriction
    except ImportError:
        raise VaekitError("compression needs the constriction package: pip install 'vaekit[compress]'") from None
    return constriction


# --- determinism -----------------------------------------------------------------------------------

@contextlib.contextmanager
def coding_context():
    """One intra-op thread and no autograd while probabilities are computed: reductions then run
    in one fixed order, whatever the process's own thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(threads)


def rounded(t: torch.Tensor) -> torch.Tensor:
    """t in float64 on the parameter grid: what the coder's models are built from."""
    return torch.round(t.detach().double() / PARAM_GRID) * PARAM_GRID


def coding_model(run) -> torch.nn.Module:
    """The run's model on the CPU in fp32 eval mode (a copy when the run lives on a GPU)."""
    model = run.model
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return model.float().eval()


def run_digest(run) -> str:
    """SHA-256 over the model's name, config and every weight (and a text run's vocabulary):
    a file can only be decompressed by the run that made it."""
    h = hashlib.sha256()
    h.update(json.dumps(run.config.get("model"), sort_keys=True).encode())
    tokenizer = getattr(run, "tokenizer", None)
    if tokenizer is not None:
        h.update(json.dumps(tokenizer.to_json(), sort_keys=True).encode())
    for name, tensor in sorted(run.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:DIGEST_CHARS]


# --- the latent and the chains ---------------------------------------------------------------------

class Latent:
    """z on the grid k * LATENT_BIN, k in -LATENT_LIMIT..LATENT_LIMIT: quantised Gaussians for the
    posterior (popped at encoding: the bits back) and for the N(0, I) prior."""

    def __init__(self, dim: int):
        c = _constriction()
        self.dim = dim
        self.family = c.stream.model.QuantizedGaussian(-LATENT_LIMIT, LATENT_LIMIT)
        self.prior_mean = np.zeros(dim)
        self.prior_std = np.full(dim, 1.0 / LATENT_BIN)

    def posterior(self, model, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Means and standard deviations of q(z | x) in grid units, (B, D) float64 each."""
        # x contiguous whatever view the caller holds (decoding's images are a channels-last view of the
        # popped pixels): another memory layout takes another oneDNN kernel, whose sums differ in the
        # last bit on some CPUs (Intel AMX), enough to move a posterior across a grid cell.
        q = model.encode(x.contiguous())
        mean = (rounded(q.mean) / LATENT_BIN).clamp(-LATENT_LIMIT, LATENT_LIMIT)
        std = (rounded(0.5 * q.log_var).exp() / LATENT_BIN).clamp(1e-2, 16.0 / LATENT_BIN)
        return mean.numpy(), std.numpy()

    def values(self, ks: list[np.ndarray]) -> torch.Tensor:
        """Grid indices per chain -> z (B, D) float32."""
        return torch.from_numpy(np.stack(ks).astype(np.float32) * np.float32(LATENT_BIN))


def seed_words(chain: int, n: int) -> np.ndarray:
    """The fixed initial words of a chain (PCG64: the same numbers on every platform)."""
    words = np.random.Generator(np.random.PCG64(0x5EED + chain)).integers(0, 2**32, n, dtype=np.uint32)
    words[-1] |= np.uint32(1 << 31)  # a full top word: the ANS head starts in its normal range
    return words


def chain_count(n: int, chains: int | None) -> int:
    if chains is None:
        chains = min(MAX_CHAINS, max(1, n // EXAMPLES_PER_CHAIN))
    if not isinstance(chains, int) or chains < 1:
        raise VaekitError(f"chains must be a whole number >= 1, got {chains!r}")
    return max(1, min(chains, n))


def rounds(n: int, chains: int) -> list[range]:
    """Example indices of each round: round r codes examples r*chains ... (one per chain)."""
    return [range(r, min(n, r + chains)) for r in range(0, n, chains)]


def encode_chains(model, latent: Latent, n: int, chains: int, batch, push_x) -> list[np.ndarray]:
    """BB-ANS over all rounds. batch(idx) -> the model's input for those examples; push_x(coders,
    idx, x, z) pushes each example with p(x | z). Returns each chain's words."""
    c = _constriction()
    n_seed = SEED_WORDS_PER_DIM * latent.dim + 4
    coders = [c.stream.stack.AnsCoder(seed_words(i, n_seed)) for i in range(chains)]
    untouched = []
    for r, idx in enumerate(rounds(n, chains)):
        x = batch(idx)
        mean, std = latent.posterior(model, x)
        ks = [coders[i].decode(latent.family, mean[i], std[i]) for i in range(len(idx))]
        if r == 0:  # seed words below the ANS head (2 words) that the first pop did not reach: not stored
            untouched = [max(0, coder.num_words() - 2) for coder in coders]
        push_x(coders, idx, x, latent.values(ks))
        for i, k in enumerate(ks):
            coders[i].encode_reverse(k, latent.family, latent.prior_mean, latent.prior_std)
    return [coder.get_compressed()[cut:] for coder, cut in zip(coders, untouched)]


def decode_chains(model, latent: Latent, n: int, words: list[np.ndarray], pop_x, store) -> None:
    """The inverse of encode_chains. pop_x(coders, idx, z) -> the model's input for those examples;
    store(idx, x) keeps them. Checks every chain ends with its seed words."""
    c = _constriction()
    chains = len(words)
    coders = [c.stream.stack.AnsCoder(w.copy()) for w in words]
    for idx in reversed(rounds(n, chains)):
        ks = [coders[i].decode(latent.family, latent.prior_mean, latent.prior_std) for i in range(len(idx))]
        x = pop_x(coders, idx, latent.values(ks))
        mean, std = latent.posterior(model, x)
        for i, k in enumerate(ks):
            coders[i].encode_reverse(k, latent.family, mean[i], std[i])
        store(idx, x)
    n_seed = SEED_WORDS_PER_DIM * latent.dim + 4
    for i, coder in enumerate(coders):
        rest = coder.get_compressed()
        if len(rest) > n_seed or not np.array_equal(rest, seed_words(i, n_seed)[n_seed - len(rest):]):
            raise _mismatch()


def _mismatch() -> VaekitError:
    return VaekitError("the decoded data do not check out: this machine computed other probabilities "
                       "than the one that compressed the file (another CPU type, torch version or a GPU), "
                       "or the file was altered; nothing was written")


# --- images ----------------------------------------------------------------------------------------

class PixelCoder:
    """How one likelihood codes the pixels of one example given the decoder's output."""

    def __init__(self, likelihood):
        c = _constriction()
        from .distributions import Bernoulli, DiscretizedLogistic

        if isinstance(likelihood, Bernoulli):
            self.levels, self.family = 2, c.stream.model.Bernoulli(perfect=False)
        elif isinstance(likelihood, DiscretizedLogistic):
            self.levels, self.family = DiscretizedLogistic.LEVELS, c.stream.model.Categorical(perfect=False)
            self.components = likelihood.components
            self.min_log_scale = likelihood.min_log_scale
        else:
            raise VaekitError(f"this run's likelihood ({type(likelihood).__name__.lower()}) has no code for "
                              "pixels: train with --likelihood bernoulli (binary images) or --likelihood "
                              "logistic / logistic-mix (8-bit images)")

    def tables(self, params: torch.Tensor) -> list[np.ndarray]:
        """Per example, what the coder's model takes for its pixels (raster order, channels last):
        Bernoulli: P(pixel = 1), (H*W*C,); logistic: level probabilities, (H*W*C, 256), made one
        example at a time (a batch of mixture tables would take gigabytes)."""
        if self.levels == 2:
            p = torch.sigmoid(rounded(params))  # (B, C, H, W)
            return list(p.permute(0, 2, 3, 1).flatten(1).numpy())
        return [self.logistic_tables(rounded(params[i:i + 1]))[0] for i in range(len(params))]

    def logistic_tables(self, params: torch.Tensor) -> np.ndarray:
        """Probabilities of the 256 levels (PixelCNN++'s discretisation, distributions.DiscretizedLogistic),
        computed in float64 from rounded parameters: (B, H*W*C, 256)."""
        b, _, h, w = params.shape
        p = params.reshape(b, -1, 3, self.components, h, w).permute(0, 4, 5, 1, 3, 2)  # (B, H, W, C, K, 3)
        p = p.reshape(b, -1, self.components, 3)  # (B, H*W*C, K, 3)
        weights = torch.softmax(p[..., 0], -1)  # (B, n, K)
        means, log_scales = p[..., 1], p[..., 2].clamp(min=self.min_log_scale)
        edges = (torch.arange(self.levels - 1, dtype=torch.float64) + 0.5) / (self.levels - 1)  # (255,)
        cdf = torch.sigmoid((edges - means.unsqueeze(-1)) * torch.exp(-log_scales).unsqueeze(-1))  # (B, n, K, 255)
        zeros, ones = torch.zeros_like(cdf[..., :1]), torch.ones_like(cdf[..., :1])
        probs = torch.diff(torch.cat([zeros, cdf, ones], -1), dim=-1)  # (B, n, K, 256)
        return np.ascontiguousarray((weights.unsqueeze(-1) * probs).sum(2).clamp(min=0).numpy())

    def push(self, coder, symbols: np.ndarray, table: np.ndarray) -> None:
        coder.encode_reverse(symbols.astype(np.int32), self.family, table)

    def pop(self, coder, table: np.ndarray) -> np.ndarray:
        return coder.decode(self.family, table)


def image_symbols(x: torch.Tensor, levels: int) -> np.ndarray:
    """Model input in [0, 1] (B, C, H, W) -> levels in raster order, channels last, (B, H*W*C)."""
    return torch.round(x * (levels - 1)).to(torch.int32).permute(0, 2, 3, 1).flatten(1).numpy()


def pixel_walk(model, z: torch.Tensor, coder: PixelCoder, next_pixel) -> torch.Tensor:
    """The pixel decoder walked in raster order (PixelVAE.walk), the same way when encoding and decoding:
    next_pixel(i, j, table) gets the coder's tables of pixel (i, j) made from rounded parameters (float64:
    Bernoulli: P(pixel = 1), (B, C); logistic: the levels' probabilities, (B, C, 256)) and returns the
    pixels' levels (B, C) as integers. Returns the images (B, C, H, W) in [0, 1]."""
    b = len(z)
    scale = float(coder.levels - 1)

    def step(i, j, params):  # (B, C * params_per_channel)
        params = rounded(params)
        if coder.levels == 2:
            table = torch.sigmoid(params).numpy()  # (B, C)
        else:
            table = coder.logistic_tables(params.view(b, -1, 1, 1))  # (B, C, 256): one pixel as a 1x1 image
        return torch.as_tensor(np.asarray(next_pixel(i, j, table), dtype=np.float32) / np.float32(scale))

    return model.walk(model.decode(z), step)


def compress_images(run, levels: np.ndarray, chains: int | None) -> tuple[dict, list[np.ndarray]]:
    """levels: (N, C, H, W) integers (0/1 for a Bernoulli run, 0..255 for a logistic one)."""
    model = coding_model(run)
    coder = PixelCoder(model.likelihood)
    scale = np.float32(coder.levels - 1)
    data = torch.from_numpy(levels.astype(np.float32) / scale)  # (N, C, H, W) in [0, 1]
    n = len(levels)
    chains = chain_count(n, chains)
    autoregressive = hasattr(model, "pixel_logits")

    def push_x(coders, idx, x, z):
        symbols = image_symbols(x, coder.levels)
        if autoregressive:
            tables = []
            levels_x = torch.round(x * (coder.levels - 1)).numpy()  # (B, C, H, W)
            pixel_walk(model, z, coder, lambda i, j, t: (tables.append(t), levels_x[:, :, i, j])[1])
            table = np.stack(tables, 1)  # (B, H*W, C[, 256]), raster order, channels last
            table = table.reshape(len(idx), -1, *table.shape[3:])  # (B, H*W*C[, 256])
        else:
            table = coder.tables(model.decode(z))
        for i in range(len(idx)):
            coder.push(coders[i], symbols[i], table[i])

    with coding_context():
        words = encode_chains(model, Latent(model.latent_dim), n, chains, lambda idx: data[idx.start:idx.stop],
                              push_x)
    return {"levels": coder.levels}, words


def decompress_images(run, header: dict, words: list[np.ndarray]) -> np.ndarray:
    model = coding_model(run)
    coder = PixelCoder(model.likelihood)
    if coder.levels != header["levels"]:
        raise VaekitError("the file's pixel levels do not match this run's likelihood")
    n, shape = header["n"], tuple(model.config.image_shape)
    out = np.zeros((n, *shape), dtype=np.uint8)
    autoregressive = hasattr(model, "pixel_logits")

    def pop_x(coders, idx, z):
        if autoregressive:
            return pixel_walk(model, z, coder, lambda i, j, t: np.stack([coder.pop(coders[b], t[b])
                                                                         for b in range(len(idx))]))
        table = coder.tables(model.decode(z))
        symbols = np.stack([coder.pop(coders[i], table[i]) for i in range(len(idx))])  # (B, H*W*C)
        c, h, w = shape
        return torch.from_numpy(symbols.reshape(-1, h, w, c).transpose(0, 3, 1, 2).astype(np.float32)
                                / np.float32(coder.levels - 1))

    def store(idx, x):
        out[idx.start:idx.stop] = torch.round(x * (coder.levels - 1)).to(torch.uint8).numpy()

    with coding_context():
        decode_chains(model, Latent(model.latent_dim), n, words, pop_x, store)
    return out


def image_levels(run, x) -> tuple[np.ndarray, dict]:
    """Images as the run codes them, and what restores their exact array: refuses (with one clear
    message) values, shapes and types the run cannot code."""
    from .distributions import Bernoulli

    array = np.asarray(x)
    expected = tuple(run.model.config.image_shape)
    squeeze = array.ndim == 3 and expected[0] == 1
    if squeeze:
        array = array[:, None]
    if array.ndim != 4 or tuple(array.shape[1:]) != expected:
        raise VaekitError(f"this run codes images of shape {expected} (C, H, W), got {tuple(np.shape(x))[1:]}")
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
        raise VaekitError(f"images must be integers (uint8 0..255, or 0/1 for binary images), got {array.dtype}; "
                          "vaekit compresses exact levels, not floats")
    meta = {"dtype": array.dtype.str, "squeeze": bool(squeeze), "one": 1}
    if isinstance(run.model.likelihood, Bernoulli):
        values = np.unique(array)
        if array.dtype == np.uint8 and set(values.tolist()) <= {0, 255} and 255 in values:
            meta["one"] = 255  # binary images saved as black and white 8-bit
        elif not set(values.tolist()) <= {0, 1}:
            raise VaekitError(f"this run's likelihood is Bernoulli: it codes binary images (0/1, or 0/255 as "
                              f"uint8), found values {values.min()}..{values.max()}; binarise them first, or "
                              "use a run trained with --likelihood logistic for 8-bit images")
        return (array == meta["one"]).astype(np.uint8), meta
    if array.size and (array.min() < 0 or array.max() > 255):
        raise VaekitError(f"8-bit images must lie in 0..255, found {array.min()}..{array.max()}")
    return array.astype(np.uint8), meta


def restore_images(levels: np.ndarray, meta: dict) -> np.ndarray:
    dtype = np.dtype(meta["dtype"])
    array = (levels * meta["one"]).astype(dtype) if dtype != np.bool_ else levels.astype(bool)
    return array[:, 0] if meta["squeeze"] else array


# --- text ------------------------------------------------------------------------------------------

END, LITERAL_UNK = 256, 257  # escape symbols after the bytes: end of word, the word "<unk>" itself
LAYOUTS = 4  # per line: a leading space (bit 0), a trailing space (bit 1)


def split_line(line: bytes) -> tuple[int, list[bytes]]:
    """A line as (layout, words): lead + b" ".join(words) + trail, exactly (double spaces give
    empty words). PTB's lines start and end with a space."""
    lead = line[:1] == b" "
    rest = line[1:] if lead else line
    trail = bool(rest) and rest[-1:] == b" "
    rest = rest[:-1] if trail else rest
    return int(lead) + 2 * int(trail), (rest.split(b" ") if rest else [])


def join_line(layout: int, words: list[bytes]) -> bytes:
    return b" " * (layout & 1) + b" ".join(words) + b" " * (layout >> 1)


def line_tokens(tokenizer, words: list[bytes]) -> tuple[list[int], list[int]]:
    """Token ids (ending with <eos>) and escape symbols: a word that is not exactly a vocabulary
    word becomes <unk>, followed in the escapes by its bytes and END (or LITERAL_UNK for "<unk>")."""
    ids, escapes = [], []
    for word in words:
        try:
            i = tokenizer.word_index.get(word.decode("utf-8"), -1)
        except UnicodeDecodeError:
            i = -1
        if i >= 4:  # a real word; the specials typed in the text are escaped
            ids.append(i)
            continue
        ids.append(tokenizer.UNK_ID)
        escapes += [LITERAL_UNK] if i == tokenizer.UNK_ID else [*word, END]
    return ids + [tokenizer.EOS_ID], escapes


def word_walk(model, z: torch.Tensor, next_token, max_steps: int) -> None:
    """The text decoder walked word by word, the same way when encoding and decoding, until every
    line has given <eos>: next_token(step, probs (B, V) float64, active (B,) bool) -> tokens (B,).
    More than max_steps words (the file's longest line) means other probabilities than the encoder's."""
    from .models.text_rnn import BOS, EOS, PAD

    b = len(z)
    state = model.init_state(z)
    tokens = torch.full((b, 1), BOS, dtype=torch.long)
    active = np.ones(b, dtype=bool)
    step = 0
    while active.any():
        if step >= max_steps:
            raise _mismatch()
        logits, state = model.step(tokens, z, state)  # (B, 1, V)
        probs = torch.softmax(rounded(logits[:, -1]), -1).numpy()  # (B, V)
        chosen = np.where(active, next_token(step, probs, active), PAD)
        tokens = torch.from_numpy(chosen.astype(np.int64)).view(b, 1)
        active &= chosen != EOS
        step += 1


def fixed_table(counts: dict, size: int) -> np.ndarray:
    """A categorical from the file's own symbol counts (stored in its header), smoothed by one."""
    table = np.ones(size)
    for k, v in counts.items():
        table[int(k)] += v
    return table


def padded(lines_ids: list[list[int]]) -> torch.Tensor:
    width = max(len(ids) for ids in lines_ids)
    out = torch.zeros(len(lines_ids), width, dtype=torch.long)  # PAD = 0
    for row, ids in zip(out, lines_ids):
        row[:len(ids)] = torch.tensor(ids)
    return out


def text_parts(run, data: bytes):
    trailing = data.endswith(b"\n")
    lines = (data[:-1] if trailing else data).split(b"\n")  # b"" is one empty line
    parsed = [split_line(line) for line in lines]
    tokens = [line_tokens(run.tokenizer, words) for _, words in parsed]
    return lines, trailing, [layout for layout, _ in parsed], tokens


def compress_text(run, data: bytes, chains: int | None) -> tuple[dict, list[np.ndarray]]:
    c = _constriction()
    model = coding_model(run)
    if not hasattr(model, "step"):
        raise VaekitError(f"compressing text needs an autoregressive decoder (text-rnn); this run's model is "
                          f"{model.name}")
    lines, trailing, layouts, tokens = text_parts(run, data)
    escape_counts = dict(zip(*np.unique(np.array([s for _, e in tokens for s in e] or [0]), return_counts=True)))
    escape_counts = {int(k): int(v) for k, v in escape_counts.items() if any(e for _, e in tokens)}
    layout_counts = {int(k): int(v) for k, v in zip(*np.unique(np.array(layouts or [0]), return_counts=True))}
    longest = max(len(ids) for ids, _ in tokens)
    longest_escape = max((len(e) for _, e in tokens), default=0)
    header = {"trailing_newline": trailing, "escapes": escape_counts, "layouts": layout_counts, "n": len(lines),
              "longest": longest, "longest_escape": longest_escape}
    escape_table, layout_table = fixed_table(escape_counts, 258), fixed_table(header["layouts"], LAYOUTS)
    family = c.stream.model.Categorical(perfect=False)
    n = len(lines)
    chains = chain_count(n, chains)

    def push_x(coders, idx, x, z):
        tables = []
        word_walk(model, z, lambda step, probs, active: (tables.append(probs), x[:, step].numpy())[1], longest)
        for b, i in enumerate(idx):
            ids, escapes = tokens[i]
            coders[b].encode_reverse(np.array([layouts[i]], dtype=np.int32), family, layout_table[None])
            if escapes:
                coders[b].encode_reverse(np.array(escapes, dtype=np.int32), family,
                                         np.repeat(escape_table[None], len(escapes), 0))
            coders[b].encode_reverse(np.array(ids, dtype=np.int32), family,
                                     np.stack([t[b] for t in tables[:len(ids)]]))

    def batch(idx):
        ids = padded([tokens[i][0] for i in idx])
        return torch.cat([ids, torch.zeros(len(idx), 1, dtype=torch.long)], 1)  # room for the walk's last step

    with coding_context():
        words = encode_chains(model, Latent(model.latent_dim), n, chains, batch, push_x)
    return header, words


def decompress_text(run, header: dict, words: list[np.ndarray]) -> bytes:
    c = _constriction()
    model = coding_model(run)
    family = c.stream.model.Categorical(perfect=False)
    escape_table = fixed_table(header["escapes"], 258)[None]
    layout_table = fixed_table(header["layouts"], LAYOUTS)[None]
    n = header["n"]
    lines: list[bytes] = [b""] * n
    index_word = [w.encode("utf-8") for w in run.tokenizer.index_word]

    def pop_x(coders, idx, z):
        decoded = [[] for _ in idx]

        def next_token(step, probs, active):
            out = np.zeros(len(idx), dtype=np.int64)
            for b in np.flatnonzero(active):
                out[b] = int(coders[b].decode(family, probs[b:b + 1])[0])
                decoded[b].append(out[b])
            return out

        word_walk(model, z, next_token, header["longest"])
        for b, i in enumerate(idx):
            line_words = []
            for t in decoded[b][:-1]:  # without <eos>
                line_words.append(index_word[t] if t != run.tokenizer.UNK_ID else pop_escape(coders[b]))
            layout = int(coders[b].decode(family, layout_table)[0])
            lines[i] = join_line(layout, line_words)
        return batch_ids([decoded[b] for b in range(len(idx))])

    def pop_escape(coder) -> bytes:
        symbols = []
        for _ in range(header["longest_escape"]):
            s = int(coder.decode(family, escape_table)[0])
            if s == LITERAL_UNK and not symbols:
                return b"<unk>"
            if s >= END:
                return bytes(symbols)
            symbols.append(s)
        raise _mismatch()

    def batch_ids(rows):
        ids = padded(rows)
        return torch.cat([ids, torch.zeros(len(rows), 1, dtype=torch.long)], 1)

    with coding_context():
        decode_chains(model, Latent(model.latent_dim), n, words, pop_x, lambda idx, x: None)
    return b"\n".join(lines) + (b"\n" if header["trailing_newline"] else b"")


# --- per kind: each modality that can be compressed names its Codec (Modality.codec) -------------------

def _image_compress(run, x, chains):
    levels, meta = image_levels(run, x)
    if not len(levels):
        raise VaekitError("no images to compress")
    header, words = compress_images(run, levels, chains)
    return {**header, **meta, "n": len(levels), "shape": list(levels.shape[1:])}, words, levels.tobytes()


def _image_decompress(run, header, words):
    if tuple(header.get("shape", ())) != tuple(run.model.config.image_shape):
        raise VaekitError("the file's image shape does not match the run")
    levels = decompress_images(run, header, words)
    return restore_images(levels, header), levels.tobytes()


def _text_compress(run, x, chains):
    if isinstance(x, str):
        data, as_str = x.encode("utf-8"), True
    elif isinstance(x, (bytes, bytearray)):
        data, as_str = bytes(x), False
    else:
        raise VaekitError(f"a text run compresses a text (str or bytes), got {type(x).__name__}")
    header, words = compress_text(run, data, chains)
    return {**header, "as_str": as_str}, words, data


def _text_decompress(run, header, words):
    data = decompress_text(run, header, words)
    return (data.decode("utf-8") if header["as_str"] else data), data


@dataclass(frozen=True)
class Codec:
    """How a kind of data is coded: compress(run, x, chains) -> (header, chain words, canonical bytes),
    decompress(run, header, words) -> (data, canonical bytes); `files`, what the CLI reads and writes."""

    compress: Callable
    decompress: Callable
    files: str  # "image files" (a PNG folder or a .npy array) or "a text file"


IMAGE_CODEC = Codec(_image_compress, _image_decompress, "image files")
TEXT_CODEC = Codec(_text_compress, _text_decompress, "a text file")


def codec_of(run) -> Codec:
    """The run's codec; a kind of data without one is refused with the kinds that have one."""
    codec = run.modality.codec()
    if codec is None:
        raise VaekitError(f"compression works with image and text runs; this is {run.modality.article} {run.kind} run")
    return codec


# --- the file --------------------------------------------------------------------------------------

def compress(run, x, chains: int | None = None, meta: dict | None = None) -> bytes:
    """x compressed with `run` into a self-checking file (bytes). Image runs take integer image
    arrays (N, C, H, W) or (N, H, W): 0/1 (or 0/255) for Bernoulli runs, 0..255 for logistic ones;
    text runs take a text (str or bytes; each line a sentence). meta: JSON-able extras kept in the
    header (the CLI keeps file names there)."""
    header, words, canonical = codec_of(run).compress(run, x, chains)
    header.update(kind=run.kind, model=run.model.name, run=run_digest(run),
                  data_sha256=hashlib.sha256(canonical).hexdigest()[:DIGEST_CHARS], meta=meta or {},
                  chain_words=[len(w) for w in words])
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    body = MAGIC + struct.pack("<HI", FORMAT_VERSION, len(head)) + head + b"".join(
        w.astype("<u4").tobytes() for w in words)
    return body + hashlib.sha256(body).digest()


def read_header(blob: bytes) -> tuple[dict, list[np.ndarray]]:
    """The header and chain words of a compressed file, its integrity checked (magic, version,
    length, checksum): a truncated, altered or foreign file gives one clear VaekitError."""
    blob = bytes(blob)
    if blob[:len(MAGIC)] != MAGIC:
        raise VaekitError("not a vaekit compressed file (no VAEKITZ magic at its start)")
    if len(blob) < len(MAGIC) + 6 + 32:
        raise VaekitError("the compressed file is truncated")
    version, head_len = struct.unpack_from("<HI", blob, len(MAGIC))
    if version != FORMAT_VERSION:
        raise VaekitError(f"the compressed file has format version {version}; this vaekit reads version "
                          f"{FORMAT_VERSION}")
    body, digest = blob[:-32], blob[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise VaekitError("the compressed file is damaged or truncated (its checksum does not match)")
    start = len(MAGIC) + 6
    try:
        header = json.loads(body[start:start + head_len])
        sizes = [int(s) for s in header["chain_words"]]
    except (ValueError, KeyError, TypeError):
        raise VaekitError("the compressed file's header is unreadable") from None
    payload = np.frombuffer(body[start + head_len:], dtype="<u4")
    if sum(sizes) != len(payload) or min(sizes, default=0) < 0:
        raise VaekitError("the compressed file's header and payload do not agree")
    offsets = np.cumsum([0, *sizes])
    return header, [payload[a:b].astype(np.uint32) for a, b in zip(offsets[:-1], offsets[1:])]


def decompress(run, blob: bytes, with_header: bool = False):
    """The data that `compress(run, x)` was given, exactly; with_header also returns the header
    (its "meta" holds what compress was given as meta)."""
    header, words = read_header(blob)
    if header.get("kind") != run.kind or header.get("run") != run_digest(run):
        raise VaekitError(f"this file was compressed with another run ({header.get('kind')} run, model "
                          f"{header.get('model')}, weights digest {str(header.get('run'))[:12]}), not with "
                          f"{run.path}; decompress it with that run")
    data, canonical = codec_of(run).decompress(run, header, words)
    if hashlib.sha256(canonical).hexdigest()[:DIGEST_CHARS] != header.get("data_sha256"):
        raise _mismatch()
    return (data, header) if with_header else data


"""Variations from the Keras peer's text VAE, for bench/text_variations.py (runs in the peers' venv).

Imports ../shared/peers/keras_seed_text.py unchanged, which trains and tests the model exactly as
that script does (same environment variables: EPOCHS, LIMIT, DATA, MAXLEN, SEED); then encodes the
requested sentences, draws k codes from each posterior, z = mean + spread * std * eps (as vaekit's
`Run.vary`), and decodes each greedily (argmax per position; the peer's decoder is not
autoregressive) into its words, leaving out the positions where it predicts padding (id 0): its
training targets hold padding only after the sentence, so a padding prediction is "no word here".
The peer's own print-out keeps inner padding as "_" and strips it at the end; dropping it instead
keeps those markers out of BLEU and n-gram counts.

Env: PEER_DIR (folder of keras_seed_text.py), VARY_IN (JSON {"sentences", "k", "spread", "seed"}),
VARY_OUT (JSON file to write {"variations": [[...], ...]}). Last line: keras-vary: inputs=.. variations=..
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ["PEER_DIR"])
started = time.perf_counter()
import keras_seed_text as peer  # noqa: E402  (trains at import: the script is written that way)

train_seconds = time.perf_counter() - started


def decode(ids) -> str:
    """The predicted words, padding (id 0) left out."""
    return " ".join(peer.index_word[int(i)] for i in ids if int(i) != 0)


request = json.loads(Path(os.environ["VARY_IN"]).read_text())
k, spread = int(request["k"]), float(request["spread"])
x = peer.to_array([peer.words(s) for s in request["sentences"]])  # (N, T) ids
mean, log_var, _ = peer.encoder(x, training=False)
mean, std = np.asarray(mean), np.exp(0.5 * np.asarray(log_var))  # (N, LATENT) each
rng = np.random.default_rng(int(request["seed"]))
variations = []
for m, s in zip(mean, std):
    z = m + spread * s * rng.standard_normal((k, m.size))  # (k, LATENT)
    ids = np.argmax(np.asarray(peer.decoder(z.astype("float32"), training=False)), axis=-1)  # (k, T)
    variations.append([decode(row) for row in ids])
Path(os.environ["VARY_OUT"]).write_text(json.dumps({"variations": variations}) + "\n")
print(f"keras-vary: inputs={len(variations)} variations={k} train_and_test_seconds={train_seconds:.1f}")

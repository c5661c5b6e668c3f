"""`vaekit explore RUN`: a local web page for a trained run's latent space.

The page (static/, shipped in the package: no CDN, no external font) draws the data's latent means
in 2-D on a canvas, coloured by label, anomaly score or ELBO; hovering shows an example beside its
reconstruction, a click decodes the point under the cursor, two points give an interpolation, and
sliders move the selected code along each latent dimension (with that dimension's KL beside it).

    session.py   the model side: codes, the 2-D view, scores, decoding (through the public Run API)
    server.py    the HTTP server: 127.0.0.1, its own routes only, bounded requests, JSON errors
"""
from __future__ import annotations

from .server import make_server
from .session import Explorer

__all__ = ["Explorer", "make_server"]

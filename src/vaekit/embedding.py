"""`vaekit embed`: latent means of new data to .npy or CSV, and a 2-D view coloured by label.

The view is the latent space itself when it is 2-D; otherwise PCA of the latent means
(scikit-learn), UMAP (McInnes et al. 2018) with `view="umap"` when umap-learn is installed, or
`view="parametric"`: a parametric UMAP map (vaekit.ParametricUMAP) fitted once on the latent means and
kept in the run directory, so that later calls place new data on the same map in one forward pass.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from . import stamps
from .errors import VaekitError
from .runs import write_json

PROJECTIONS = ("pca", "umap")  # fitted afresh on the codes at hand
VIEWS = PROJECTIONS + ("parametric",)  # parametric: a map kept in the run (parametric_view)
MAP_DIR = "embedding_map"  # inside the run directory
AXES = {"pca": ("PC 1", "PC 2"), "umap": ("UMAP 1", "UMAP 2"), "parametric": ("map 1", "map 2"),
        "latent": ("z[0]", "z[1]")}  # what a view's two coordinates are, by _view_name


def project_2d(z: np.ndarray, view: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, 2) coordinates to draw and what they are: z itself when 2-D, else its PCA or UMAP."""
    if z.shape[1] == 2:
        return z, "latent means"
    if z.shape[1] == 1:
        return np.column_stack([z[:, 0], np.zeros(len(z))]), "latent means (1-D)"
    if view not in PROJECTIONS:
        raise VaekitError(f"view must be one of {', '.join(PROJECTIONS)}, got {view!r}")
    if len(z) < 3:
        raise VaekitError(f"a 2-D view of a {z.shape[1]}-D latent space needs at least 3 examples, got {len(z)}")
    if view == "umap":
        try:
            import umap
        except ImportError:
            raise VaekitError("--view umap needs umap-learn (pip install umap-learn); --view pca works without it"
                              ) from None
        # n_jobs=1 as a seed implies anyway (umap-learn warns when it has to override its default -1).
        return (umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(z),
                f"UMAP of {z.shape[1]}-D latent means")
    from sklearn.decomposition import PCA

    return PCA(2, random_state=seed).fit_transform(z), f"PCA of {z.shape[1]}-D latent means"


def write_embedding(out: Path, z: np.ndarray, labels: np.ndarray | None, classes: list[str] | None,
                    texts: list[str] | None, ids: list[str] | None = None, id_name: str = "id") -> list[Path]:
    """.csv: one row per example (z0.., label, text, id: an image's file or a table's ID column), the label
    as its class name where the data names its classes (as anomalies' scores.csv does); otherwise .npy
    plus _labels.npy (class indices)."""
    from .runs import atomic_write

    if out.suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([f"z{i}" for i in range(z.shape[1])] + (["label"] if labels is not None else [])
                        + (["text"] if texts else []) + ([id_name] if ids else []))
        for i, row in enumerate(z):
            extra = [] if labels is None else [classes[labels[i]] if classes else int(labels[i])]
            writer.writerow([f"{v:.6g}" for v in row] + extra + ([texts[i]] if texts else [])
                            + ([ids[i]] if ids else []))
        atomic_write(out, buffer.getvalue().encode())
        return [out]
    buffer = io.BytesIO()
    np.save(buffer, z)
    atomic_write(out, buffer.getvalue())
    written = [out]
    if labels is not None:
        buffer = io.BytesIO()
        np.save(buffer, labels)
        atomic_write(_beside(out, "labels.npy"), buffer.getvalue())
        written.append(_beside(out, "labels.npy"))
    return written


def parametric_view(run, z: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str, str]:
    """(N, 2) coordinates from the run's saved parametric map, fitting and saving it on z first when
    the run has none; returns the coordinates, what they are and what was done."""
    from .parametric_umap import ParametricUMAP

    path = run.path / MAP_DIR
    stale = path.exists() and not stamps.matches(stamps.read(path / stamps.MAP_STAMP), run.path)
    if stale:  # fitted on the codes of earlier weights: they moved, so the map means nothing now
        _remove_map(path)
    if path.exists():
        mapper = ParametricUMAP.load(path)
        if mapper.n_features_in_ != z.shape[1]:
            raise VaekitError(f"{path} maps {mapper.n_features_in_}-D codes, this run's are {z.shape[1]}-D")
        done = f"placed on the map saved in {path}"
    else:
        if len(z) < 3:
            raise VaekitError(f"fitting a parametric map needs at least 3 examples, got {len(z)}")
        mapper = ParametricUMAP(random_state=seed).fit(z)
        mapper.save(path)
        write_json(path / stamps.MAP_STAMP, {stamps.KEY: stamps.of_run(run.path)})
        done = (f"fitted a parametric UMAP map on these {len(z)} latent means and saved it in {path}; "
                "later `--view parametric` calls place new data on it")
        if stale:
            done = ("the run's weights changed since its parametric map was fitted, so the map was fitted again: "
                    + done)
    mapper.precision = run.precision  # transform as the run encodes (fit trains in fp32 either way)
    return mapper.transform(z), f"parametric UMAP of {z.shape[1]}-D latent means", done


def _remove_map(path: Path) -> None:
    """Delete the files of a stale embedding map (only the names vaekit writes there)."""
    for name in ("config.json", "model.safetensors", stamps.MAP_STAMP):
        (path / name).unlink(missing_ok=True)
    try:
        path.rmdir()
    except OSError:
        raise VaekitError(f"{path} holds files vaekit did not write; move them to fit the map again") from None


def _beside(out: Path, suffix: str) -> Path:
    """A file embed writes next to `out`: OUT_labels.npy, OUT_pca.png, ... (companion_paths lists them)."""
    return out.with_name(f"{out.stem}_{suffix}")


def _view_name(view: str, latent_dim: int) -> str:
    return "latent" if latent_dim <= 2 else view  # a 2-D code is its own view


def companion_paths(out: Path, view: str, latent_dim: int) -> list[Path]:
    """The files `embed` may write beside `out` (the labels of a .npy, the 2-D view's coordinates and plot)."""
    name = _view_name(view, latent_dim)
    paths = [_beside(out, "labels.npy")] if out.suffix != ".csv" else []
    if latent_dim > 2:
        paths.append(_beside(out, f"{name}.npy"))
    return paths + [_beside(out, f"{name}.png")]


def embed(run, source: str, out: Path, view: str = "pca", limit: int | None = None) -> list[str]:
    """Encode `source` with the run, write the latent means and the 2-D view (its coordinates too,
    as OUT_VIEW.npy, when the latent space has more than 2 dimensions); returns messages."""
    from . import visual
    from .anomaly import read_inputs
    from .runs import atomic_write

    data = read_inputs(run, source, limit)
    z = run.encode(data.x)
    messages = [f"wrote {p}" for p in write_embedding(out, z, data.y, data.classes, data.texts, data.ids,
                                                                   data.id_name)]
    messages[0] += f": {z.shape[0]} latent means of dimension {z.shape[1]}"
    if z.shape[1] > 2 and len(z) < 3:  # the codes are what was asked for; a view of two points is not
        messages.append(f"no 2-D view: one of a {z.shape[1]}-D latent space needs at least 3 examples, got {len(z)}")
        return messages
    if view != "pca" and z.shape[1] <= 2:  # say it rather than draw something else than was asked for
        messages.append(f"the latent space is {z.shape[1]}-D: it is drawn as it is, --view {view} does not apply")
    if view == "parametric" and z.shape[1] > 2:
        xy, what, done = parametric_view(run, z)
        messages.append(done)
    else:
        xy, what = project_2d(z, view)
    name = _view_name(view, z.shape[1])
    if z.shape[1] > 2:
        coordinates = _beside(out, f"{name}.npy")
        buffer = io.BytesIO()
        np.save(buffer, xy.astype(np.float32))
        atomic_write(coordinates, buffer.getvalue())
        messages.append(f"wrote {coordinates} ({what}, 2 columns)")
    plot = _beside(out, f"{name}.png")
    visual.latent_scatter(xy, data.y, plot, data.classes, title=what, axes=AXES[name])
    messages.append(f"wrote {plot} ({what}" + (", coloured by label)" if data.y is not None else ")"))
    return messages

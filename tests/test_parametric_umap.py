"""vaekit.ParametricUMAP (vaekit/parametric_umap.py): the 2-D map keeps neighbourhoods, training is what
makes it do so, save -> load maps identically, and `vaekit embed --view parametric` fits it once and
reuses it for new data."""
import shutil

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from vaekit import ParametricUMAP
from vaekit.errors import VaekitError
from vaekit.parametric_umap import curve_parameters, fuzzy_graph

from .test_anomalies import tabular_run  # noqa: F401  (the module-scoped fixture)
from .test_cli import run_cli


@parametrize_with_checks([ParametricUMAP(steps=20, batch_size=64)], expected_failed_checks=lambda est: {
    "check_methods_subset_invariance": "float32 network: a row's result agrees across batch compositions to "
                                       "~1e-6 relative, the check asks 1e-7 (as for vaekit.VAE)"})
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    # 8 overlapping clusters in 10-D: a 2-D map must keep them apart to classify its points by neighbours.
    x, y = make_blobs(1500, n_features=10, centers=8, cluster_std=3.0, random_state=0)
    return x[:1000], y[:1000], x[1000:], y[1000:]


def knn_accuracy(mapper, blobs):
    x, y, x_new, y_new = blobs
    return KNeighborsClassifier(5).fit(mapper.transform(x), y).score(mapper.transform(x_new), y_new)


@pytest.fixture(scope="module")
def fitted(blobs):
    return ParametricUMAP(steps=300, batch_size=512, random_state=0).fit(blobs[0])


def test_the_trained_map_keeps_neighbourhoods_of_new_points(fitted, blobs):
    untrained = ParametricUMAP(steps=1, batch_size=512, random_state=0).fit(blobs[0])
    assert knn_accuracy(fitted, blobs) > 0.9 > knn_accuracy(untrained, blobs) + 0.1
    assert np.mean(fitted.loss_curve_[-20:]) < 0.8 * np.mean(fitted.loss_curve_[:20])
    assert fitted.transform(blobs[2]).shape == (500, 2)


def test_the_curve_and_the_graph_are_umaps():
    a, b = curve_parameters(0.1)  # umap-learn's find_ab_params(1.0, 0.1): a = 1.577, b = 0.895
    assert a == pytest.approx(1.577, abs=0.01) and b == pytest.approx(0.895, abs=0.01)
    x = np.array([[0.0], [1.0], [3.0], [10.0]])
    heads, tails, weights = fuzzy_graph(x, n_neighbors=3)
    w = {(int(h), int(t)): float(v) for h, t, v in zip(heads, tails, weights)}
    assert w[(0, 1)] == pytest.approx(1.0) and w[(1, 0)] == pytest.approx(1.0)  # nearest neighbour: 1
    assert all(w[(t, h)] == pytest.approx(v) for (h, t), v in w.items())       # symmetric
    assert all(0 < v <= 1 for v in weights)


def test_save_load_maps_identically_and_refuses_bad_paths(fitted, blobs, tmp_path):
    fitted.save(tmp_path / "map")
    loaded = ParametricUMAP.load(tmp_path / "map")
    assert np.array_equal(loaded.transform(blobs[2]), fitted.transform(blobs[2]))
    with pytest.raises(VaekitError, match="exists"):
        fitted.save(tmp_path / "map")
    (tmp_path / "map" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(VaekitError, match="not a saved ParametricUMAP"):
        ParametricUMAP.load(tmp_path / "map")
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.zeros((3, 4)))


def test_embed_parametric_view_fits_once_then_reuses_the_map(tabular_run, capsys, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(tabular_run, run)  # the fixture's run stays as the other tests expect it
    code, stdout, _ = run_cli(capsys, "embed", run, "--data", "breast-cancer", "--view", "parametric",
                              "--out", tmp_path / "z.npy")
    assert code == 0 and "fitted a parametric UMAP map" in stdout and (run / "embedding_map").is_dir()
    first = np.load(tmp_path / "z_parametric.npy")
    assert first.shape == (569, 2) and (tmp_path / "z_parametric.png").exists()
    code, stdout, _ = run_cli(capsys, "embed", run, "--data", "breast-cancer", "--view", "parametric",
                              "--out", tmp_path / "again.npy")
    assert code == 0 and "placed on the map saved in" in stdout
    assert np.allclose(np.load(tmp_path / "again_parametric.npy"), first, atol=1e-5)

"""The reference-set scores of vaekit/anomaly.py checked against brute force on tiny data: the
standardised residual, the Mahalanobis distance of codes, their standardised sums; that they travel
with a saved run; that each kind's default is what the estimator uses; and that no score is computed
from labels."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

import vaekit
from vaekit.anomaly import VARIANCE_FLOOR, Reference, build_reference, codes, residuals
from vaekit.errors import VaekitError
from vaekit.models import build_model

FAST = {"epochs": 3, "model_options": {"hidden": (16,)}, "train_options": {"threads": 1}}


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return x, y  # 1 = benign (normal here)


def test_reference_scores_against_brute_force():
    """standardised = sum of squared residual / the feature's training mean (floored); mahalanobis =
    sqrt((z - mean)' cov^-1 (z - mean)) over the training codes; "a+b" = minus the sum of each
    distance standardised by its training mean and deviation."""
    torch.manual_seed(0)
    model = build_model("mlp", n_features=6, latent_dim=3).eval()
    train, new = torch.randn(200, 6), torch.randn(30, 6) * 2
    ref = build_reference(model, train)
    var = residuals(model, train).mean(0).double()
    var = var.clamp_min(VARIANCE_FLOOR * var.mean())
    with torch.no_grad():
        squared = (model.reconstruct(new) - new).pow(2).double()
        train_squared = (model.reconstruct(train) - train).pow(2).double()
    std_new, std_train = (squared / var).sum(1).numpy(), (train_squared / var).sum(1).numpy()
    assert np.allclose(-ref.score(model, new, "standardised"), std_new, rtol=1e-4)
    z, z_train = codes(model, new).double().numpy(), codes(model, train).double().numpy()
    d = z - z_train.mean(0)
    maha = np.sqrt(np.einsum("nd,de,ne->n", d, np.linalg.inv(np.cov(z_train, rowvar=False)), d))
    assert np.allclose(-ref.score(model, new, "mahalanobis"), maha, rtol=1e-3)
    dt = z_train - z_train.mean(0)
    maha_train = np.sqrt(np.einsum("nd,de,ne->n", dt, np.linalg.inv(np.cov(z_train, rowvar=False)), dt))
    expected = -((std_new - std_train.mean()) / std_train.std() + (maha - maha_train.mean()) / maha_train.std())
    assert np.allclose(ref.score(model, new, "standardised+mahalanobis"), expected, rtol=1e-3, atol=1e-3)
    # three parts: the same standardised sum (reconstruction's spread from the training errors, knn's from
    # each training code's leave-one-out distance to its 5 nearest others)
    errors_new = squared.sum(1).numpy()
    errors_train = train_squared.sum(1).numpy()
    knn = np.sort(np.linalg.norm(z[:, None] - z_train[None], axis=2), 1)[:, :5].mean(1)
    knn_train = np.sort(np.linalg.norm(z_train[:, None] - z_train[None], axis=2), 1)[:, 1:6].mean(1)
    expected = -sum((d - d_train.mean()) / d_train.std() for d, d_train in
                    ((errors_new, errors_train), (std_new, std_train), (knn, knn_train)))
    assert np.allclose(ref.score(model, new, "reconstruction+standardised+knn"), expected, rtol=1e-3, atol=1e-3)
    # further from the training data = lower score, for every reference score
    far = train[:30] + 6
    for method in ("standardised", "mahalanobis", "knn", "standardised+knn", "reconstruction+standardised+knn"):
        assert ref.score(model, far, method).mean() < ref.score(model, train[:30], method).mean(), method


def test_text_reference_has_no_residuals():
    """A reference without residuals (a text run's) refuses the residual scores with one message."""
    ref = Reference(torch.randn(20, 3), None)
    with pytest.raises(VaekitError, match="residuals"):
        ref.score(None, torch.zeros(2, 3), "standardised")


@pytest.mark.parametrize("method", ["standardised", "standardised+knn", "mahalanobis"])
def test_scores_never_see_labels(cancer, method):
    """No score is computed from labels: fit ignores y (given, permuted or absent, the same model and
    the same scores), and score_samples takes no labels at all."""
    x, y = cancer
    train, test = x[y == 1][:150], x[:80]
    plain = vaekit.VAE(score_method=method, **FAST).fit(train)
    scores = plain.score_samples(test)
    permuted = np.random.default_rng(0).permutation(len(train))
    for labels in (np.ones(len(train)), y[y == 1][:150][permuted], np.arange(len(train))):
        again = vaekit.VAE(score_method=method, **FAST).fit(train, labels)
        assert np.array_equal(again.score_samples(test), scores)
        assert again.offset_ == plain.offset_
    import inspect

    assert list(inspect.signature(plain.score_samples).parameters) == ["X"]


def test_default_score_per_kind_and_round_trip(cancer, tmp_path):
    """score_method=None means the kind's default (what `vaekit anomalies` uses without --score);
    a saved estimator scores the same after load (the residual variances travel in the reference)."""

    x, y = cancer
    vae = vaekit.VAE(score_method=None, **FAST).fit(x[y == 1])
    assert vae.score_method_ == vaekit.modalities.get("tabular").default_score
    scores = vae.score_samples(x)
    vae.save(tmp_path / "r")
    again = vaekit.VAE.load(tmp_path / "r")
    assert np.allclose(again.score_samples(x), scores, rtol=1e-6)

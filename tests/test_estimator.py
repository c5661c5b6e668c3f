"""vaekit.VAE as scikit-learn sees it: the estimator checks, thresholds, Pipeline, GridSearchCV,
save/load through the run directory, the image and text kinds, and bad input."""
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from vaekit import VAE, VaekitError

FAST = {"epochs": 2, "model_options": {"hidden": (8,)}}

HELD_OUT = "the threshold is calibrated on the held-out split, by design, so the training set's share " \
           "of outliers only approximates `contamination`"
EXPECTED_FAILURES = {
    "check_outliers_train": HELD_OUT,
    "check_outliers_fit_predict": HELD_OUT,
    "check_methods_subset_invariance": "float32 network: an example's result agrees across batch compositions "
                                       "to ~1e-6 relative, the check asks 1e-7",
}


# The default (ELBO) score, and the score that compares with the training codes (a reference set
# made in fit and carried through clone, save and load).
@parametrize_with_checks([VAE(**FAST), VAE(**FAST, score_method="reconstruction+knn")],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def cancer():
    d = load_breast_cancer()
    return d.data, d.target  # 0 = malignant, 1 = benign


@pytest.fixture(scope="module")
def fitted(cancer):
    x, y = cancer
    return VAE(epochs=30, contamination=0.05).fit(x[y == 1])


def test_scores_rank_the_other_class_as_anomalous(fitted, cancer):
    x, y = cancer
    scores = fitted.score_samples(x)
    assert scores.shape == (len(x),) and np.isfinite(scores).all()
    assert roc_auc_score(y == 0, -scores) > 0.85  # trained on benign only: malignant scores low


def test_threshold_flags_the_contamination_share_of_held_out_data(fitted, cancer):
    held_out = fitted.heldout_scores_
    assert np.mean(held_out < fitted.offset_) <= 0.05 + 1 / len(held_out)
    decision = fitted.decision_function(cancer[0])
    assert np.array_equal(fitted.predict(cancer[0]), np.where(decision < 0, -1, 1))
    assert np.allclose(decision, fitted.score_samples(cancer[0]) - fitted.offset_)
    stricter = VAE(**{**fitted.get_params(), "contamination": 0.2}).fit(cancer[0][cancer[1] == 1])
    assert stricter.offset_ > fitted.offset_
    assert (stricter.predict(cancer[0]) == -1).sum() > (fitted.predict(cancer[0]) == -1).sum()


def test_transform_inverse_transform_sample(fitted, cancer):
    x = cancer[0][:5]
    z = fitted.transform(x)
    assert z.shape == (5, 15) and z.dtype == np.float64  # the tables' default latent size: half the columns
    back = fitted.inverse_transform(z)
    assert back.shape == (5, 30)
    # decoded rows are in raw units: the same order of magnitude as the data, not standardised
    assert abs(np.log10(back[:, 3].mean() / x[:, 3].mean())) < 1
    assert fitted.sample(7, random_state=0).shape == (7, 30)
    assert np.array_equal(fitted.sample(3, random_state=1), fitted.sample(3, random_state=1))


def test_iw_score_is_at_least_the_elbo_on_average(fitted, cancer):
    iw = VAE(**{**fitted.get_params(), "score_method": "iw", "k": 50})
    elbo = VAE(**{**fitted.get_params(), "score_method": "elbo"})
    iw.run_ = elbo.run_ = fitted.run_  # same model, other scores (the default is not a likelihood)
    x = cancer[0][:50]
    assert iw.score_samples(x).mean() >= elbo.score_samples(x).mean() - 0.1


def test_save_and_load_give_identical_results(fitted, cancer, tmp_path):
    path = fitted.save(tmp_path / "vae")
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    assert not list(path.glob("*.pkl"))
    again = VAE.load(path)
    assert again.get_params() == fitted.get_params()
    assert again.offset_ == fitted.offset_
    x = cancer[0][:20]
    assert np.allclose(again.score_samples(x), fitted.score_samples(x))
    assert np.array_equal(again.predict(x), fitted.predict(x))
    with pytest.raises(VaekitError, match="--overwrite|overwrite"):
        fitted.save(path)


def test_pipeline_and_grid_search(cancer):
    x, y = cancer
    pipe = make_pipeline(StandardScaler(), VAE(**FAST)).fit(x[:200])
    assert pipe.transform(x[:4]).shape == (4, 15)
    assert set(np.unique(pipe.predict(x[:50]))) <= {-1, 1}
    # Unsupervised model selection: score() is the mean held-out log-likelihood, GridSearchCV's default.
    search = GridSearchCV(VAE(**FAST), {"latent_dim": [1, 3]}, cv=2).fit(x[:120])
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["latent_dim"] in (1, 3)
    assert search.best_estimator_.transform(x[:2]).shape[1] == search.best_params_["latent_dim"]


def test_image_and_text_kinds():
    images = load_digits().images[:300] / 16.0  # (300, 8, 8) in [0, 1]
    vae = VAE(kind="image", epochs=1, latent_dim=3).fit(images)
    assert vae.transform(images[:4]).shape == (4, 3)
    assert vae.inverse_transform(np.zeros((2, 3))).shape == (2, 1, 8, 8)
    assert vae.score_samples(images[:6]).shape == (6,)
    flat = VAE(kind="image", image_shape=(1, 8, 8), epochs=1).fit(images.reshape(300, 64))
    assert flat.transform(images[:2].reshape(2, 64)).shape == (2, 2)
    sentences = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song"] * 10
    text = VAE(kind="text", epochs=1, latent_dim=4,
               model_options={"embed_dim": 16, "encoder_dim": 16, "decoder_dim": 16}).fit(sentences)
    assert text.transform(["the cat ran"]).shape == (1, 4)
    assert isinstance(text.inverse_transform(np.zeros((1, 4)))[0], str)
    assert text.predict(["the cat sat", "zebra quantum"]).shape == (2,)


@pytest.mark.parametrize("x,match", [
    (np.array([[1.0, 2.0], [np.nan, np.nan], [1.0, 1.0]]), "X row 1 has no value"),
    (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0]]), "infinity"),
    (np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [6.0, 5.0]]), "constant"),
    (np.zeros((0, 3)), "0 sample"),
    (np.ones((1, 3)), "1 sample"),
])
def test_bad_training_data_is_refused(x, match):
    with pytest.raises(ValueError, match=match):
        VAE(**FAST).fit(x)


def test_constant_columns_can_be_dropped(cancer):
    x = cancer[0][:100].copy()
    x[:, 4] = 7.0
    vae = VAE(**FAST, drop_constant=True).fit(x)
    assert vae.run_.model.config.n_features == 29
    assert vae.transform(x[:3]).shape == (3, 14)  # rows still come with all 30 columns; half the 29 kept


def test_bad_data_after_fitting(fitted):
    with pytest.raises(ValueError, match="30 features"):
        fitted.transform(np.ones((2, 5)))
    with pytest.raises(ValueError, match="X row 0 has no value"):  # a gap is fine, a row of nothing is not
        fitted.score_samples(np.full((2, 30), np.nan))
    with pytest.raises(ValueError, match="kind='text'"):
        VAE(kind="text", epochs=1).fit([1, 2, 3])
    with pytest.raises(ValueError, match="mlp"):
        VAE(kind="text", model="mlp", epochs=1).fit(["a b", "c d", "e f"])


@pytest.mark.skipif(not __import__("torch").ops.mkldnn._is_mkldnn_bf16_supported(), reason="CPU without native bf16")
def test_bf16_precision_trains_and_embeds_close_to_fp32(tmp_path):
    images = load_digits().images[:300] / 16.0
    vae = VAE(kind="image", model="image-mlp", epochs=2, latent_dim=2, precision="bf16").fit(images)
    z16 = vae.transform(images)
    vae.run_.precision = "fp32"
    z32 = vae.transform(images)
    assert not np.array_equal(z16, z32)  # bf16 really ran
    assert np.abs(z16 - z32).max() <= 0.05 * np.abs(z32).max()
    vae.run_.precision = "bf16"
    again = VAE.load(vae.save(tmp_path / "vae"))
    assert again.precision == "bf16" and np.array_equal(again.transform(images), z16)


def test_unknown_inference_precision_is_refused(fitted, tmp_path):
    from vaekit import api

    with pytest.raises(VaekitError, match="precision"):
        api.load(fitted.save(tmp_path / "vae"), precision="fp8")


def test_what_training_warns_is_located_at_the_callers_fit():
    """A collapsed code is said at the line of the user's fit, not inside torch or vaekit (where Python's
    warning line would show a stranger's source)."""
    x = np.random.default_rng(0).normal(size=(60, 4))  # independent noise: nothing for a code to carry
    with pytest.warns(UserWarning, match="the latent code looks collapsed") as said:
        VAE(kind="tabular", epochs=260, beta=4.0, random_state=0).fit(x)  # 1 step an epoch: past min_steps
    assert {w.filename for w in said if "collapsed" in str(w.message)} == {__file__}

"""vaekit.VAE with categorical columns (`categorical`): a pandas DataFrame by column name, or a 2-D object array by
column index, read as `vaekit train tabular --categorical` reads a CSV file. The category must go with the numbers
(a row whose category is swapped against its price scores low), an unseen category scores as unusual, samples and
decoded rows name the categories, save/load keeps all of it, and a column of words not named is refused at once.
The DataFrame cases need pandas and are skipped without it; the array cases test the same reading without it."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from vaekit import VAE, VaekitError

KINDS = ("book", "chair", "lamp")
PRICE = {"book": 10.0, "lamp": 60.0, "chair": 110.0}
COLUMNS = ["kind", "price", "weight", "city"]
FAST = {"epochs": 100, "random_state": 0}  # 0.7 s a fit; a swapped row ranked low for seeds 0-4 (AUROC 1.0)


def _shop(n: int, seed: int):
    """(kind, price, weight, city) columns: the price depends on the kind; weight and city are independent."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(KINDS, n)
    price = np.array([PRICE[k] for k in kinds]) + rng.normal(0, 2, n)
    return [kinds, price, rng.normal(5, 1, n), rng.choice(["Lyon", "Paris"], n)]


def _table(form: str, columns):
    if form == "frame":
        pd = pytest.importorskip("pandas")
        return pd.DataFrame(dict(zip(COLUMNS, columns)))
    return np.array(list(zip(*columns)), dtype=object)  # (N, 4): str and float cells


def _categorical(form: str) -> list:
    return ["kind", "city"] if form == "frame" else [0, 3]


@pytest.fixture(scope="module", params=["frame", "array"])
def shop(request):
    form = request.param
    return form, VAE(**FAST, categorical=_categorical(form)).fit(_table(form, _shop(240, seed=0)))


def test_a_category_swapped_against_its_price_scores_low(shop):
    form, vae = shop
    typical = _shop(60, seed=1)
    rotate = {"book": "lamp", "lamp": "chair", "chair": "book"}  # each row its price with another kind
    swapped = [np.array([rotate[k] for k in typical[0]]), *typical[1:]]
    s_typical, s_swapped = vae.score_samples(_table(form, typical)), vae.score_samples(_table(form, swapped))
    assert np.isfinite(s_typical).all() and np.isfinite(s_swapped).all()
    labels = np.r_[np.zeros(60), np.ones(60)]
    assert roc_auc_score(labels, -np.r_[s_typical, s_swapped]) > 0.9
    assert np.mean(vae.predict(_table(form, swapped)) == -1) > np.mean(vae.predict(_table(form, typical)) == -1)


def test_an_unseen_category_scores_as_unusual(shop):
    form, vae = shop
    typical = _shop(60, seed=1)
    sofa = [np.array(["sofa"] * 5), *[c[:5] for c in typical[1:]]]  # known prices, a kind fit never saw
    s_typical = vae.score_samples(_table(form, typical))
    s_sofa = vae.score_samples(_table(form, sofa))
    assert s_sofa.max() < np.quantile(s_typical, 0.1)
    assert (vae.predict(_table(form, sofa)) == -1).all()
    assert vae.transform(_table(form, sofa)).shape == (5, 2)


def test_categories_are_learned_and_samples_name_them(shop):
    form, vae = shop
    kind, city = _categorical(form)
    assert vae.categories_ == {str(kind): KINDS, str(city): ("Lyon", "Paris")}
    rows = vae.sample(300, random_state=0)
    decoded = vae.inverse_transform(vae.transform(_table(form, _shop(4, seed=2))))
    if form == "frame":
        assert list(rows.columns) == COLUMNS and list(decoded.columns) == COLUMNS
        kinds, prices, cities = rows["kind"].to_numpy(), rows["price"].to_numpy(), rows["city"].to_numpy()
        assert rows["price"].dtype == np.float64
    else:
        assert rows.shape == (300, 4) and rows.dtype == object and decoded.shape == (4, 4)
        kinds, prices, cities = rows[:, 0], rows[:, 1].astype(float), rows[:, 3]
    assert set(kinds) <= set(KINDS) and len(set(kinds)) == 3 and set(cities) <= {"Lyon", "Paris"}
    assert np.median(prices[kinds == "book"]) < np.median(prices[kinds == "chair"])  # the price follows its kind
    assert set(np.asarray(decoded)[:, 0]) <= set(KINDS)


def test_save_and_load_give_identical_scores_and_samples(shop, tmp_path):
    form, vae = shop
    path = vae.save(tmp_path / "vae")
    assert not list(path.glob("*.pkl"))
    again = VAE.load(path)
    assert again.get_params() == vae.get_params() and again.categories_ == vae.categories_
    columns = _shop(30, seed=3)
    columns[0][0] = "sofa"  # an unseen category too
    x = _table(form, columns)
    assert np.array_equal(again.score_samples(x), vae.score_samples(x))
    assert np.array_equal(again.predict(x), vae.predict(x)) and again.offset_ == vae.offset_
    first, second = vae.sample(5, random_state=4), again.sample(5, random_state=4)
    if form == "frame":
        assert list(again.feature_names_in_) == COLUMNS and second.equals(first)
    else:
        assert not hasattr(again, "feature_names_in_") and np.array_equal(second, first)


def test_params_clone_and_set_params_keep_categorical():
    vae = VAE(categorical=["kind", "city"])
    assert vae.get_params()["categorical"] == ["kind", "city"]
    assert clone(vae).categorical == ["kind", "city"]
    assert vae.set_params(categorical=None).categorical is None


def test_a_column_of_words_not_named_is_refused_with_the_categorical_that_takes_it():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(dict(zip(COLUMNS, _shop(40, seed=0))))
    with pytest.raises(VaekitError, match=r"2 column\(s\) of words.*'kind'.*'city'.*categorical=\['kind', 'city'\]"):
        VAE(**FAST).fit(frame)
    with pytest.raises(ValueError, match=r"1 column\(s\) of words.*'city'.*categorical=\['kind', 'city'\]"):
        VAE(**FAST, categorical=["kind"]).fit(frame)
    # an ID and a date are no categories: said so, and not offered in categorical=[...]
    frame["id"], frame["sold"] = [f"P{i:03d}" for i in range(40)], [f"2024-01-{1 + i % 28:02d}" for i in range(40)]
    with pytest.raises(VaekitError, match=r"'id' .*a row ID.*'sold' .*dates: write them as numbers.*"
                                          r"categorical=\['kind', 'city'\] to keep .* leave the others out of X"):
        VAE(**FAST).fit(frame)
    numeric = VAE(**{**FAST, "epochs": 1}).fit(frame[["price", "weight"]])  # numbers only: as before
    assert isinstance(numeric.inverse_transform(np.zeros((1, 2))), np.ndarray)
    with pytest.raises(VaekitError, match=r"'kind'.*fit with categorical=\['kind'\]"):
        numeric.score_samples(frame[["kind", "weight"]])


def test_an_array_column_of_words_not_named_is_refused():
    x = _table("array", _shop(40, seed=0))
    with pytest.raises(VaekitError, match=r"'0' \('\w+' in row 0\), '3'.*categorical=\['0', '3'\]"):
        VAE(**FAST).fit(x)


@pytest.mark.parametrize("params,edit,match", [
    ({"categorical": [0, 7]}, None, "has no column '7'"),
    ({"categorical": [0, 3]}, (2, 1, float("inf")), "line 2, column '1' is inf"),
    ({"categorical": [0.5]}, None, "by name or 0-based index, got 0.5"),
    ({"categorical": [0], "kind": "image"}, None, "categorical"),
])
def test_bad_categorical_input_is_refused(params, edit, match):
    x = _table("array", _shop(40, seed=0))
    if edit is not None:
        x[edit[0], edit[1]] = edit[2]
    with pytest.raises(VaekitError, match=match):
        VAE(**{**FAST, **params}).fit(x)

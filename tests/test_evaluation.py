"""The evaluation estimators against known answers, the collapse warning, and evaluate/compare end to end."""
import json
import math
import sys
import types
import warnings

import numpy as np
import pytest
import torch

from vaekit.cli import main
from vaekit.data import TRANSFORMS
from vaekit.errors import VaekitError
from vaekit.evaluation import (
    EvalConfig,
    active_units,
    evaluate,
    latent_probes,
    likelihood_bounds,
    mutual_information,
    mutual_information_terms,
)
from vaekit.evaluation_report import compare, read_evaluation
from vaekit.models import build_model
from vaekit.training import CollapseMonitor

from .test_cli import run_cli
from .test_objectives import LinearConfig, LinearGaussian, linear_data


def test_likelihood_bounds_parts_add_up_and_iw_is_tighter():
    model, x = LinearGaussian(LinearConfig(2, shift=0.6, widen=2.0)).eval(), linear_data(300)
    torch.manual_seed(0)
    b = likelihood_bounds(model, x, k=50, batch_size=64)
    assert b["mean"].shape == b["log_var"].shape == b["kl_per_dim"].shape == (300, 2)
    assert torch.allclose(b["neg_elbo"], b["reconstruction"] + b["kl_per_dim"].sum(1))
    assert b["iw_nll"].mean() < b["neg_elbo"].mean()
    with pytest.raises(ValueError, match="eval"):
        likelihood_bounds(model.train(), x, k=2)


def test_text_bounds_come_back_in_the_callers_order():
    # Sentences are batched by length inside; every figure must still belong to its own sentence.
    torch.manual_seed(0)
    model = build_model("text-rnn", vocab_size=50, max_len=9, embed_dim=8, encoder_dim=8, decoder_dim=8,
                        latent_dim=2).eval()
    lengths = torch.tensor([7, 2, 5, 1, 6, 3, 4, 2])
    x = torch.randint(4, 50, (8, 9)) * (torch.arange(9) < lengths[:, None])  # (8, 9), padded with 0
    b = likelihood_bounds(model, x, k=4, batch_size=3)
    assert torch.allclose(b["mean"], model.encode(x).mean, atol=1e-6)
    alone = [likelihood_bounds(model, x[i:i + 1], k=1)["reconstruction"] for i in (0, 3)]
    assert b["reconstruction"][0] > alone[1] and b["reconstruction"][3] < alone[0]  # 7 tokens cost more than 1


def test_mutual_information_of_the_linear_gaussian_is_its_closed_form():
    # x = z + noise with unit-variance z: I(x; z) = D/2 log(1 + 1/SIGMA^2) = log 5 for D = 2.
    b = LinearGaussian().encode(linear_data(3000))
    mi = mutual_information(b.mean, b.log_var, torch.Generator().manual_seed(0))
    assert abs(mi - math.log(5)) < 0.1


def collapsed_model():
    """The seed model with its last encoder layers zeroed: q(z|x) = N(0, I) for every x."""
    model = build_model("seed", image_shape=(1, 8, 8)).eval()
    with torch.no_grad():
        for layer in (model.to_mean, model.to_log_var):
            layer.weight.zero_()
            layer.bias.zero_()
    return model


def test_a_collapsed_posterior_has_no_information_and_no_active_units(digits):
    x = TRANSFORMS["rescale"](digits.x[:300])
    torch.manual_seed(0)
    b = likelihood_bounds(collapsed_model(), x, k=3)
    assert abs(mutual_information(b["mean"], b["log_var"], torch.Generator().manual_seed(0))) < 0.02
    assert active_units(b["mean"])[0] == 0
    assert b["kl_per_dim"].abs().max() < 1e-6


def test_the_information_estimate_is_reported_raw_with_its_noise():
    # A collapsed code on 40 examples: every q(z|x) is N(0, I), so I(x; z) = 0 and each term is exactly
    # 0.5 (|z_i|^2 - D), pure noise of the z draws. Its mean may come out below 0; it must not be clipped.
    mean, log_var = torch.zeros(40, 4), torch.zeros(40, 4)
    for seed in range(20):
        noise = torch.randn(40, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        terms = mutual_information_terms(mean, log_var, torch.Generator().manual_seed(seed))
        assert torch.allclose(terms, 0.5 * (noise.pow(2).sum(1) - 4))
        if terms.mean() < 0:
            break
    mi = mutual_information(mean, log_var, torch.Generator().manual_seed(seed))
    stderr = float(terms.std() / math.sqrt(40))
    assert mi == pytest.approx(float(terms.mean())) and -2 * stderr < mi < 0


def test_an_informative_posterior_has_positive_information(digits):
    torch.manual_seed(0)
    model = build_model("seed", image_shape=(1, 8, 8), latent_dim=4).eval()
    with torch.no_grad():  # posteriors (std 0.0025) far narrower than the spread of their means
        model.to_log_var.weight.zero_()
        model.to_log_var.bias.fill_(-12.0)
    q = model.encode(TRANSFORMS["rescale"](digits.x[:500]))
    assert mutual_information(q.mean, q.log_var, torch.Generator().manual_seed(0)) > 0.5


def test_active_units_count_dimensions_whose_means_vary_over_the_data():
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.0, 0.05, 0.2, 1.0, 3.0])  # variances 0, 0.0025, 0.04, 1, 9
    mean = torch.randn(5000, 5, generator=g) * scales + 7.0  # a shared offset is not activity
    count, variance = active_units(mean)
    assert count == 3
    assert torch.allclose(variance, scales.pow(2), rtol=0.1, atol=1e-3)


def test_probes_read_labels_from_separable_codes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    codes = np.eye(3)[labels] * 5 + rng.normal(0, 0.3, (120, 3))
    scores = latent_probes(codes, labels, inputs=codes)
    assert scores["knn_accuracy"] == 1.0 and scores["logreg_accuracy"] == 1.0
    assert scores["trustworthiness"] == pytest.approx(1.0)
    shuffled = latent_probes(rng.normal(size=(120, 3)), labels)
    assert shuffled["knn_accuracy"] < 0.7 and "trustworthiness" not in shuffled
    assert latent_probes(codes, None) == {}


# ---- the collapse warning ------------------------------------------------------------------------
class FakeTrainer:
    def __init__(self, model, step: int = 0):
        self.model, self.device = model, torch.device("cpu")
        self.state = types.SimpleNamespace(step=step)  # optimizer steps taken so far


def test_collapse_monitor_warns_once_after_patience_epochs(digits):
    monitor = CollapseMonitor(digits, patience=2)
    trainer = FakeTrainer(collapsed_model())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(1, 5):
            metrics = {"epoch": epoch, "val_kl": 0.001}
            trainer.state.step += 469  # an MNIST epoch's steps: two epochs pass min_steps
            monitor.on_metrics(trainer, metrics)
            assert metrics["val_active_units"] == 0
            assert len(caught) == (0 if epoch < 2 else 1)
    assert "collapsed" in str(caught[0].message) and "--free-bits" in str(caught[0].message)


def test_collapse_monitor_is_quiet_while_the_code_is_used(digits):
    model = build_model("seed", image_shape=(1, 8, 8)).eval()
    with torch.no_grad():
        model.to_mean.weight.mul_(50)  # means that vary over the data
    monitor = CollapseMonitor(digits, patience=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for epoch in range(1, 4):
            metrics = {"epoch": epoch, "val_kl": 3.0}
            monitor.on_metrics(FakeTrainer(model), metrics)
            assert metrics["val_active_units"] > 0
    # A streak is broken by a healthy epoch: collapse must be consecutive.
    monitor = CollapseMonitor(None, patience=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for epoch, kl in enumerate((0.0, 2.0, 0.0, 2.0), 1):
            monitor.on_metrics(FakeTrainer(model, step=469 * epoch), {"epoch": epoch, "train_kl": kl})


# ---- the commands ---------------------------------------------------------------------------------
FAST = ["--epochs", "2", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "image", "--out", str(out), "--model", "seed", "--latent-dim", "2", *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    words = "the a cat dog sat ran on under mat log big small".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, rng.integers(3, 8))) for _ in range(120)]
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    (folder / "held.txt").write_text("\n".join(lines[:30]) + "\n")
    out = folder / "run"
    assert main(["train", "text", "--data", str(folder / "train.txt"), "--out", str(out), "--embed-dim", "8",
                 "--encoder-dim", "8", "--decoder-dim", "16", "--latent-dim", "3", *FAST]) == 0
    return out, folder


def test_training_metrics_carry_active_units(image_run):
    metrics = [json.loads(line) for line in (image_run / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= m["val_active_units"] <= 2 for m in metrics)


def test_evaluate_an_image_run_writes_json_report_and_plots(image_run, capsys):
    code, out, _ = run_cli(capsys, "evaluate", image_run, "--data", "digits", "--k", "20", "--limit", "300")
    assert code == 0 and "iw_nll" in out
    result = json.loads((image_run / "evaluation.json").read_text())
    m = {name: entry["value"] for name, entry in result["metrics"].items()}
    assert result["settings"]["k"] == 20 and result["settings"]["examples"] == 300
    assert result["settings"]["seed"] == 0 and result["vaekit_version"] and result["date"]
    assert m["iw_nll"] <= m["neg_elbo"] + 0.5 and m["kl"] >= 0
    assert m["bits_per_dim"] == pytest.approx(m["iw_nll"] / (64 * math.log(2)))
    assert 0 <= m["active_units"] <= 2 and 0 <= m["knn_accuracy"] <= 1 and 0 < m["trustworthiness"] <= 1
    assert all(entry["definition"] for entry in result["metrics"].values())
    report = (image_run / "evaluation.md").read_text()
    assert "| iw_nll |" in report and "plots/kl_per_dim.png" in report and "plots/latent_means.png" in report
    assert (image_run / "plots" / "kl_per_dim.png").stat().st_size > 1000
    assert (image_run / "plots" / "latent_means.png").exists()


def test_evaluations_are_never_overwritten_silently(image_run, capsys, tmp_path):
    out = tmp_path / "reports"
    for _ in range(2):
        assert run_cli(capsys, "evaluate", image_run, "--data", "digits", "--k", "2", "--limit", "50",
                       "--out", out, "--no-probes")[0] == 0
    first = (out / "evaluation.json").read_text()
    assert (out / "evaluation-2.json").exists() and (out / "evaluation-2.md").exists()
    assert (out / "plots" / "kl_per_dim-2.png").exists()
    assert run_cli(capsys, "evaluate", image_run, "--data", "digits", "--k", "3", "--limit", "50",
                   "--out", out, "--overwrite", "--no-probes")[0] == 0
    assert (out / "evaluation.json").read_text() != first and not (out / "evaluation-3.json").exists()
    assert json.loads((out / "evaluation.json").read_text())["settings"]["k"] == 3
    # evaluation.json is now the newest, though evaluation-2.json has the higher number
    assert read_evaluation(out)["source"] == str(out / "evaluation.json")


def test_the_newest_evaluation_is_the_one_made_last_not_the_highest_number(tmp_path):
    import os

    def write(name, when, date=None):  # `when`: the file time; `date`: what the evaluation records
        (tmp_path / name).write_text(json.dumps({"format": "vaekit-evaluation", "metrics": {}, "settings": {},
                                                 **({"date": date} if date else {})}))
        os.utime(tmp_path / name, (when, when))

    write("evaluation.json", 1.6e9, date="2024-05-02T10:00:00Z")
    write("evaluation-2.json", 2e9, date="2024-05-01T10:00:00Z")  # copied later: the date still counts
    assert read_evaluation(tmp_path)["source"] == str(tmp_path / "evaluation.json")
    write("evaluation.json", 1.7e9)  # no date recorded: its file time counts
    write("evaluation-2.json", 1.6e9)
    assert read_evaluation(tmp_path)["source"] == str(tmp_path / "evaluation.json")
    write("evaluation-3.json", 1.5e9, date="2024-05-01T10:00:00Z")  # 1.7146e9: after 1.7e9
    assert read_evaluation(tmp_path)["source"] == str(tmp_path / "evaluation-3.json")
    write("evaluation.json", 1.5e9, date="2024-05-01T10:00:00Z")  # the same second: the file time decides
    os.utime(tmp_path / "evaluation.json", ns=(1_500_000_000_000_000_001,) * 2)
    assert read_evaluation(tmp_path)["source"] == str(tmp_path / "evaluation.json")


def test_compare_puts_two_evaluations_side_by_side(image_run, capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, k in ((a, 1), (b, 30)):
        assert run_cli(capsys, "evaluate", image_run, "--data", "digits", "--k", str(k), "--limit", "100",
                       "--out", folder, "--no-probes")[0] == 0
    code, out, _ = run_cli(capsys, "compare", a, b / "evaluation.json", "--out", tmp_path / "cmp.md")
    assert code == 0 and "| metric | A | B | B - A |" in out
    ea, eb = (json.loads((f / "evaluation.json").read_text())["metrics"] for f in (a, b))
    row = next(line for line in out.splitlines() if line.startswith("| iw_nll |"))
    assert float(row.split("|")[4]) == pytest.approx(eb["iw_nll"]["value"] - ea["iw_nll"]["value"], abs=1e-3)
    assert "- k: A 1, B 30" in out  # different settings are pointed out
    assert (tmp_path / "cmp.md").read_text() == out.split("wrote")[0]


def test_evaluate_a_text_run(text_run, capsys):
    run, folder = text_run
    code, out, _ = run_cli(capsys, "evaluate", run, "--data", folder / "held.txt", "--k", "5")
    assert code == 0
    result = json.loads((run / "evaluation.json").read_text())
    m = {name: entry["value"] for name, entry in result["metrics"].items()}
    assert result["kind"] == "text" and result["settings"]["examples"] == 30 and result["settings"]["tokens"] > 30
    assert m["ppl"] == pytest.approx(math.exp(m["iw_nll"] * 30 / result["settings"]["tokens"]), rel=1e-4)
    assert m["ppl"] <= m["ppl_elbo"] * 1.05 and m["unk_share"] == 0.0
    assert "knn_accuracy" not in m and "bits_per_dim" not in m
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= h["val_active_units"] <= 3 for h in history)  # the text job watches for collapse too


def test_a_text_run_trained_on_a_text_file_evaluates_a_csv_column(text_run, capsys, tmp_path):
    import csv

    run, folder = text_run
    sentences = (folder / "held.txt").read_text().splitlines()
    with open(tmp_path / "held.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "text"]] + [[i, s] for i, s in enumerate(sentences)])
    code, _, err = run_cli(capsys, "evaluate", run, "--data", tmp_path / "held.csv", "--k", "2",
                           "--out", tmp_path / "a")
    assert code == 2 and "column" in err
    code, _, _ = run_cli(capsys, "evaluate", run, "--data", tmp_path / "held.csv", "--column", "text", "--k", "2",
                         "--out", tmp_path / "a")
    assert code == 0
    assert json.loads((tmp_path / "a" / "evaluation.json").read_text())["settings"]["examples"] == len(sentences)
    code, out, _ = run_cli(capsys, "reconstruct", run, "--data", tmp_path / "held.csv", "--column", "1", "-n", "3")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()[:3]] == sentences[:3]
    code, _, err = run_cli(capsys, "evaluate", run, "--data", tmp_path / "held.csv", "--column", "nope", "--k", "2",
                           "--out", tmp_path / "b")
    assert code == 2 and "no column named 'nope'" in err


def test_evaluate_measures_the_amortisation_gap_when_asked(text_run, capsys, tmp_path):
    run, folder = text_run
    code, _, _ = run_cli(capsys, "evaluate", run, "--data", folder / "held.txt", "--k", "2", "--svi-steps", "20",
                         "--out", tmp_path)
    assert code == 0
    result = json.loads((tmp_path / "evaluation.json").read_text())
    m = {name: entry["value"] for name, entry in result["metrics"].items()}
    assert m["amortisation_gap"] == pytest.approx(m["neg_elbo"] - m["neg_elbo_svi"])
    assert math.isfinite(m["neg_elbo_svi"]) and m["kl_svi"] >= 0 and result["settings"]["svi_steps"] == 20
    assert "| amortisation_gap |" in (tmp_path / "evaluation.md").read_text()
    # without the option the figures are not there (and cost nothing)
    assert run_cli(capsys, "evaluate", run, "--data", folder / "held.txt", "--k", "2", "--out", tmp_path / "b")[0] == 0
    assert "amortisation_gap" not in json.loads((tmp_path / "b" / "evaluation.json").read_text())["metrics"]
    assert run_cli(capsys, "evaluate", run, "--data", folder / "held.txt", "--svi-steps", "-1")[0] != 0


def test_text_variations_call_text_quality(text_run, monkeypatch):
    run, folder = text_run
    seen = {}

    def variation_metrics(inputs, variations, train_sentences=None, embedder="auto"):
        seen.update(inputs=inputs, variations=variations, train=train_sentences)
        return {"self_bleu": 0.5, "semantic_consistency": None, "examples": ["not a number"],
                "semantic_model": "a model"}

    monkeypatch.setitem(sys.modules, "vaekit.text_quality", types.SimpleNamespace(
        variation_metrics=variation_metrics, UNITS={"self_bleu": "BLEU", "semantic_consistency": "cosine"},
        DEFINITIONS={"self_bleu": "diversity", "semantic_consistency": "meaning"}))
    result = evaluate(run, str(folder / "held.txt"), write=False, echo=lambda *a: None, k=2, variations=3,
                      variation_inputs=4)
    assert len(seen["inputs"]) == 4 and [len(v) for v in seen["variations"]] == [3] * 4
    assert seen["train"] and result["metrics"]["text_self_bleu"] == {"value": 0.5, "unit": "BLEU",
                                                                      "definition": "diversity"}
    assert "text_examples" not in result["metrics"] and result["settings"]["text_semantic_model"] == "a model"
    monkeypatch.setitem(sys.modules, "vaekit.text_quality", None)  # the module is not installed
    with pytest.raises(VaekitError, match="--variations 0"):
        evaluate(run, str(folder / "held.txt"), write=False, echo=lambda *a: None, k=2, variations=3)


def test_text_metrics_carry_their_units_definitions_and_embedder(text_run, monkeypatch):
    import vaekit.text_quality as tq

    run, folder = text_run
    embed = lambda sentences: np.ones((len(sentences), 3))  # every sentence means the same
    monkeypatch.setattr(tq, "_EMBEDDERS", {"auto": (embed, "a stand-in embedder")})
    result = evaluate(run, str(folder / "held.txt"), write=False, echo=lambda *a: None, k=2, variations=2,
                      variation_inputs=3)
    text = {name: m for name, m in result["metrics"].items() if name.startswith("text_")}
    assert set(text) == {f"text_{k}" for k in tq.UNITS}
    assert text["text_semantic_consistency"]["value"] == pytest.approx(1.0)
    assert text["text_bleu_to_input"]["unit"] == "BLEU (0..100)" and text["text_distinct_2"]["unit"] == "fraction"
    for name, m in text.items():
        assert m["unit"] and m["definition"] == tq.DEFINITIONS[name[len("text_"):]], name
    assert result["settings"]["text_semantic_model"] == "a stand-in embedder"
    assert "BLEU" in result["settings"]["text_bleu"]


def test_every_number_of_an_evaluation_has_a_unit_and_a_definition(text_run, capsys, tmp_path):
    run, folder = text_run
    assert run_cli(capsys, "evaluate", run, "--data", folder / "held.txt", "--k", "2", "--out", tmp_path)[0] == 0
    metrics = json.loads((tmp_path / "evaluation.json").read_text())["metrics"]
    assert all(m["unit"] and m["definition"] for m in metrics.values()), metrics
    mi, stderr = metrics["mutual_information"], metrics["mutual_information_stderr"]
    assert stderr["value"] > 0 and "below 0" in mi["definition"] and "not clipped" in mi["definition"]


def test_a_failed_evaluate_leaves_no_folders_it_made(text_run, capsys, tmp_path, monkeypatch):
    from vaekit import runs

    run, folder = text_run
    (tmp_path / "empty.txt").write_text("")
    for out in (tmp_path / "x1", tmp_path / "new" / "deeper"):
        code, _, err = run_cli(capsys, "evaluate", run, "--data", tmp_path / "empty.txt", "--out", out)
        assert code == 2 and "empty" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]
    # A failure while writing: the folders it made go, with the plot it wrote there; what was there stays.
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("mine")

    def disk_full(path, value):
        raise VaekitError(f"cannot write {path}: no space left on the device")

    monkeypatch.setattr(runs, "write_json", disk_full)
    for out in (tmp_path / "new" / "deeper", tmp_path / "old"):
        with pytest.raises(VaekitError, match="no space left"):
            evaluate(run, str(folder / "held.txt"), out=out, echo=lambda *a: None, k=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "old"]
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["notes.txt"]


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_input_gives_one_clear_error(image_run, text_run, capsys, tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((5, 1, 10, 10), dtype=np.uint8))
    cases = [
        (("evaluate", tmp_path / "nothing", "--data", "digits"), "no such run directory"),
        (("evaluate", image_run, "--data", tmp_path / "big.npy"), "shape (1, 10, 10)"),
        (("evaluate", image_run, "--data", "digits", "--k", "0"), "k must be at least 1"),
        (("evaluate", text_run[0], "--data", "digits"), "no such file: digits"),
        (("compare", tmp_path, image_run), "has no evaluation yet"),
        (("evaluate", image_run, "--data", "digits", "--out", tmp_path / "big.npy"), "is a file"),
        (("evaluate", image_run, "--data", "digits", "--column", "text"), "this image run has none"),
        (("compare", tmp_path / "big.npy", image_run), "not valid JSON"),
    ]
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and message in err, (args, err)
    with pytest.raises(VaekitError, match="limit must be at least 2"):
        EvalConfig(limit=1)
    (tmp_path / "other.json").write_text('{"metrics": {}}')
    with pytest.raises(VaekitError, match="not a vaekit evaluation"):
        compare(tmp_path / "other.json", tmp_path / "other.json")


def test_python_api_evaluates_a_loaded_run(image_run):
    import vaekit

    result = vaekit.evaluate(vaekit.load(image_run), "digits", write=False, echo=lambda *a: None, k=2, limit=40,
                             probes=False)
    assert result["settings"]["examples"] == 40 and "knn_accuracy" not in result["metrics"]
    assert len(result["kl_per_dim"]) == 2 and "files" not in result

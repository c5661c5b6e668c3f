"""The text job end to end: train on sentences, vary, sample, interpolate, reconstruct, resume,
and bad input, through the command line as a user runs it."""
import json

import pytest

import vaekit
from vaekit.cli import main

from .conftest import sentence_file, shared_data
from .test_cli import run_cli as cli

# Real sentences (the opening of the Python tutorial's prose would do as well); repeated with small
# changes so a tiny model can learn something in seconds.
BASE = ["the cat sat on the mat", "a dog ran in the park", "the bird sang in the tree",
        "a man read the paper", "the child ate an apple", "a woman drove the car to town",
        "the sun rose over the hills", "a boy kicked the ball", "the rain fell on the roof",
        "a girl painted the fence"]
SENTENCES = [s if i % 2 else s.replace("the ", "the big ", 1) for i in range(30) for s in BASE]
# A tiny model that learns these 240 sentences in the few dozen steps of a test. Untied: at 16 dimensions
# the tied softmax (the default) starts from near-uniform logits and needs several times more steps;
# tests/models covers tying.
SMALL = ["--embed-dim", "16", "--encoder-dim", "16", "--decoder-dim", "32", "--latent-dim", "8", "--no-tie-embeddings",
         "--epochs", "3", "--no-progress", "--batch-size", "32"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return sentence_file(tmp_path_factory, SENTENCES)


@pytest.fixture(scope="module")
def text_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "text"
    assert main(["train", "text", "--data", str(corpus), "--out", str(out), "--kl-warmup-steps", "10", *SMALL]) == 0
    return out


def repeated_trigrams(lines) -> int:
    """How many of the sentences repeat a word trigram (a decoding loop)."""
    return sum(len(set(g)) < len(g) for g in ([tuple(w[i:i + 3]) for i in range(len(w) - 2)]
                                               for w in (line.split() for line in lines)))


def test_the_prior_lines_of_training_decode_as_sample_does(corpus, tmp_path, capsys):
    """The prior's draws printed after each epoch use sample's repetition control (plain greedy loops)."""
    assert main(["train", "text", "--data", str(corpus), "--out", str(tmp_path / "r"), *SMALL]) == 0
    out = capsys.readouterr().out
    prior = [line.split("prior: ", 1)[1] for line in out.splitlines() if "prior: " in line]
    assert len(prior) >= 3 and repeated_trigrams(prior) == 0


def test_train_text_writes_a_run_with_tokenizer_and_perplexity(text_run):
    assert (text_run / "tokenizer.json").exists() and (text_run / "plots" / "training_curve.png").exists()
    metrics = [json.loads(x) for x in (text_run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["val_loss"] < metrics[0]["val_loss"]
    assert 1 < metrics[-1]["val_ppl"] < metrics[0]["val_ppl"]
    assert metrics[-1]["tokens_per_s"] > 0
    config = json.loads((text_run / "config.json").read_text())
    assert config["kind"] == "text" and config["model"]["name"] == "text-rnn"
    assert config["train"]["batch_size"] == 32
    assert config["train"]["keep_best"]  # text runs keep their best validation epoch by default
    best = metrics[-1]["best_epoch"]
    assert metrics[best - 1]["val_loss"] == min(m["val_loss"] for m in metrics)


def test_vary_sample_interpolate_reconstruct(text_run, corpus, capsys, tmp_path):
    code, out, _ = cli(capsys, "vary", text_run, "the cat sat on the mat", "-n", "4")
    assert code == 0 and len(out.strip().splitlines()) == 4
    for strategy in (["--strategy", "beam"], ["--strategy", "sample", "--top-p", "0.9"],
                     ["--strategy", "sample", "--top-k", "5"]):
        code, out, _ = cli(capsys, "vary", text_run, "a dog ran in the park", "-n", "2", *strategy)
        assert code == 0 and len(out.strip().splitlines()) == 2
    code, out, _ = cli(capsys, "sample", text_run, "-n", "3", "--out", tmp_path / "s.txt")
    assert code == 0 and len((tmp_path / "s.txt").read_text().splitlines()) == 3
    code, out, _ = cli(capsys, "interpolate", text_run, "the cat sat on the mat", "a girl painted the fence",
                       "--steps", "4")
    assert code == 0 and len(out.strip().splitlines()) == 4
    # Verbs that write new text decode as vary does, with repetition control: this barely trained model
    # loops under the plain argmax ("--no-repeat-ngram 0"); at the defaults no sentence repeats a trigram.
    plain = cli(capsys, "sample", text_run, "-n", "20", "--no-repeat-ngram", "0", "--repetition-penalty", "1")[1]
    assert repeated_trigrams(plain.splitlines()) > 0  # the case the defaults are for
    assert repeated_trigrams(cli(capsys, "sample", text_run, "-n", "20")[1].splitlines()) == 0
    assert repeated_trigrams(vaekit.load(text_run).sample(20, seed=0)) == 0  # Python decodes as the CLI does
    assert repeated_trigrams(cli(capsys, "interpolate", text_run, "the cat sat on the mat", "a girl painted the fence",
                     "--steps", "10")[1].splitlines()) == 0
    code, out, _ = cli(capsys, "reconstruct", text_run, "--data", corpus, "-n", "5")
    assert code == 0 and len(out.strip().splitlines()) == 5 and "\t" in out


def test_unknown_words_are_reported(text_run, capsys):
    code, out, err = cli(capsys, "vary", text_run, "the zebra sat on the xylophone", "-n", "2")
    assert code == 0 and "zebra" in err and "xylophone" in err
    # the default edit keeps them as typed, and the note says so (it said "read as <unk>" over outputs holding them)
    assert "kept as typed" in err and all("zebra" in line for line in out.strip().splitlines())
    code, out, err = cli(capsys, "vary", text_run, "the zebra sat on the xylophone", "-n", "2", "--no-keep-unknown")
    assert code == 0 and "rewritten by the model" in err
    code, out, err = cli(capsys, "vary", text_run, "qqq zzz", "-n", "2")
    assert code == 0 and "no known words" in err
    code, out, err = cli(capsys, "vary", text_run, "the cat sat on the mat " * 20, "-n", "1")
    assert code == 0 and "the run reads only its first" in err


@pytest.mark.parametrize("args", [
    ["vary", "the cat", "-n", "-3"], ["vary", "the cat", "-n", "1000000000"], ["vary", "the cat", "--spread", "nan"],
    ["vary", "the cat", "--spread", "-1"], ["sample", "-n", "-1"], ["interpolate", "the cat", "a dog", "--steps", "-2"],
    ["vary", "the cat", "--strategy", "sample", "--decode-temperature", "nan"],
    ["vary", "the cat", "--strategy", "beam", "--beam-size", "100000"], ["reconstruct", "--data", "x.txt", "-n", "-1"],
])
def test_bad_counts_and_numbers_are_refused_with_a_message(text_run, capsys, args):
    command, *rest = args
    code, out, err = cli(capsys, command, text_run, *rest)
    assert code == 2 and "error:" in err and not out.strip()


def test_bad_counts_are_refused_in_python_and_large_ones_decode_in_chunks(text_run, monkeypatch):
    from vaekit.modalities import text

    run = vaekit.load(text_run)
    for call in (lambda: run.vary("the cat", n=-1), lambda: run.vary("the cat", spread=float("nan")),
                 lambda: run.sample(0), lambda: run.interpolate("the cat", "a dog", steps=1)):
        with pytest.raises(vaekit.VaekitError):
            call()
    whole = run.sample(7, seed=3)
    monkeypatch.setattr(text, "DECODE_CHUNK", 3)
    assert run.sample(7, seed=3) == whole  # three chunks, the same sentences


def test_python_api(text_run):
    run = vaekit.load(text_run)
    z = run.encode(["the cat sat on the mat", "a dog ran in the park"])
    assert z.shape == (2, 8)
    assert len(run.vary("the cat sat on the mat", n=3, spread=0.0)) == 3
    # spread 0 and greedy decoding: every variation is the reconstruction of the mean
    from vaekit.generate import DecodeConfig

    assert len(set(run.vary("the cat sat on the mat", n=3, spread=0.0, config=DecodeConfig()))) == 1
    assert len(run.sample(2, seed=0)) == 2


def test_resume_text_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, "train", "text", "--data", corpus, "--out", out, *SMALL[:-5], "--epochs", "1",
               "--no-progress")[0] == 0
    tokenizer = (out / "tokenizer.json").read_bytes()
    assert cli(capsys, "resume", out, "--epochs", "2")[0] == 0
    assert (out / "tokenizer.json").read_bytes() == tokenizer
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_setting_documented_as_none_can_be_given_as_none(corpus, tmp_path, capsys):
    out = tmp_path / "all-words"
    code, _, _ = cli(capsys, "train", "text", "--data", corpus, "--out", out, "--max-vocab", "none",
                     *SMALL[:-5], "--epochs", "1", "--no-progress")
    assert code == 0 and json.loads((out / "tokenizer.json").read_text())["config"]["max_vocab"] is None


def test_the_documents_text_model_trains(corpus, tmp_path, capsys):
    code, _, _ = cli(capsys, "train", "text", "--data", corpus, "--model", "text-seed", "--out", tmp_path / "seed",
                     "--epochs", "1", "--no-progress")
    assert code == 0
    assert cli(capsys, "vary", tmp_path / "seed", "the cat sat on the mat", "-n", "2")[0] == 0


@pytest.mark.parametrize("content,match", [
    (b"", "empty"), (b"\n   \n\t\n", "no sentences"), (b"good line\n\xff\xfe bad bytes\n", "line 2"),
])
def test_bad_text_files(tmp_path, capsys, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    code, _, err = cli(capsys, "train", "text", "--data", path, "--out", tmp_path / "never", "--no-progress")
    assert code == 2 and match in err.lower()
    assert not (tmp_path / "never").exists()


def test_tokenizer_that_does_not_match_the_model_is_refused(text_run, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(text_run, broken)
    tok = json.loads((broken / "tokenizer.json").read_text())
    tok["words"] = tok["words"][:-3] if "words" in tok else tok
    (broken / "tokenizer.json").write_text(json.dumps(tok))
    code, _, err = cli(capsys, "vary", broken, "the cat", "-n", "1")
    assert code == 2 and "tokenizer" in err.lower()


@pytest.mark.skipif(shared_data() is None, reason="../shared/data not present")
def test_ptb_from_the_shared_data(tmp_path, capsys):
    code, _, _ = cli(capsys, "train", "text", "--data", "ptb", "--data-dir", shared_data(), "--val-data", "ptb:valid",
                     "--limit", "300", "--out", tmp_path / "ptb", *SMALL[:-5], "--epochs", "1", "--no-progress")
    assert code == 0
    config = json.loads((tmp_path / "ptb" / "config.json").read_text())
    assert config["model"]["config"]["vocab_size"] > 100


def test_csv_column_and_enormous_lines(tmp_path, capsys):
    rows = ["id,text"] + [f"{i},{s}" for i, s in enumerate(SENTENCES[:60])]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    code, _, err = cli(capsys, "train", "text", "--data", tmp_path / "t.csv", "--column", "text", "--out",
                       tmp_path / "run", *SMALL[:-5], "--epochs", "1", "--no-progress")
    assert code == 0, err
    huge = tmp_path / "huge.txt"
    huge.write_text("a fine line\n" + "word " * 300_000 + "\n")
    code, _, err = cli(capsys, "train", "text", "--data", huge, "--out", tmp_path / "never", "--no-progress")
    assert code == 2 and "line 2" in err and not (tmp_path / "never").exists()


def test_sentences_cut_at_max_len_are_counted():
    """Paragraphs in a file of sentences: the 95th-percentile max_len cuts the longest ones, and training's data
    line says how many, with the --max-len that keeps them all (it named the length only)."""
    from vaekit.modalities.text import TextDataConfig, training_arrays

    train = [f"the cat sat on mat number {i}" for i in range(40)] + ["a long one " * 20, "a long one " * 30]
    line = training_arrays(train, train[:5], TextDataConfig()).description
    assert "2 training sentence(s) longer, cut there; --max-len 91 keeps all" in line
    assert "longer" not in training_arrays(train[:40], train[:5], TextDataConfig()).description


def test_training_shows_a_looping_reconstruction_folded():
    """Training prints plain-argmax reconstructions; an early model's loop ran 16 times to the length limit
    ("of the document of the document ..."). The printout keeps two turns and counts the rest; a sentence
    that does not end in a loop is left alone."""
    from vaekit.modalities.text import fold_repeats

    loop = "the gnu is a copy" + " of the document" * 16
    assert fold_repeats(loop) == "the gnu is a copy of the document of the document ... (14 more times)"
    assert fold_repeats("mat mat mat") == "mat mat ... (1 more time)"
    for sentence in ("to be or not to be", "ha ha", "the cat sat on the mat", ""):
        assert fold_repeats(sentence) == sentence

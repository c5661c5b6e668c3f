"""Variations (issue 25): repetition control in decoding, vary's defaults, and bad input to vary."""
import subprocess
import sys

import pytest
import torch

import vaekit
from vaekit.generate import DecodeConfig, decode, penalise_repeats
from vaekit.models import build_model
from vaekit.variations import DEFAULT_SPREAD, VARY_DECODING

from .test_cli import run_cli as cli
from .test_text import corpus, text_run  # noqa: F401  (module fixtures: one tiny trained run)


def test_no_repeat_ngram_bans_the_word_that_would_repeat_an_ngram():
    history = torch.tensor([[5, 6, 7, 5]])  # the bigram (5, 6) was written; the last word is 5 again
    logits = torch.zeros(1, 10)
    out = penalise_repeats(logits, history, DecodeConfig(no_repeat_ngram=2))
    assert out[0, 6] == float("-inf")  # 6 would repeat (5, 6)
    assert torch.isfinite(out[0, [0, 5, 7, 8]]).all()
    assert torch.equal(penalise_repeats(logits, history, DecodeConfig()), logits)  # off by default


def test_repetition_penalty_lowers_only_the_words_already_written():
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    out = penalise_repeats(logits, torch.tensor([[0, 1]]), DecodeConfig(repetition_penalty=2.0))
    assert out.tolist() == [[1.0, -4.0, 2.0, -2.0]]


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_decoded_sentences_never_repeat_an_ngram(strategy):
    torch.manual_seed(0)
    model = build_model("text-rnn", vocab_size=12, max_len=12, embed_dim=8, encoder_dim=8, decoder_dim=16,
                        latent_dim=4).eval()
    with torch.no_grad():
        model.vocab_bias[3] = -50.0  # no <eos>: the tiny vocabulary forces repeats without the control
    ids = decode(model, torch.randn(4, 4), DecodeConfig(strategy=strategy, no_repeat_ngram=2, beam_size=2))
    for row in ids.tolist():
        words = [w for w in row if w != 0]
        assert words
        bigrams = list(zip(words, words[1:]))
        assert len(bigrams) == len(set(bigrams))


@pytest.mark.parametrize("bad", [{"no_repeat_ngram": -1}, {"repetition_penalty": 0.5},
                                 {"repetition_penalty": float("nan")}])
def test_bad_repetition_settings_are_refused(bad):
    with pytest.raises(vaekit.VaekitError):
        DecodeConfig(**bad)


def test_vary_uses_the_documented_defaults(text_run, monkeypatch):  # noqa: F811
    from vaekit.modalities.text import TextModality

    seen = {}
    original = TextModality.decode

    def spy(self, run, z, config):
        seen["config"] = config
        return original(self, run, z, config)

    monkeypatch.setattr(TextModality, "decode", spy)
    run = vaekit.load(text_run)
    assert len(run.vary("the cat sat on the mat", n=3, seed=0)) == 3
    assert seen["config"] == DecodeConfig(**VARY_DECODING)
    assert DEFAULT_SPREAD > 0


@pytest.mark.parametrize("sentence, note", [("", "no known words"), ("qqq zzz", "no known words"),
                                            ("the cat sat " * 200, "the run reads only its first")])
def test_vary_on_empty_unknown_or_long_input_writes_variations_and_a_note(text_run, capsys, sentence, note):  # noqa: F811
    code, out, err = cli(capsys, "vary", text_run, sentence, "-n", "2")
    assert code == 0 and note in err and len(out.strip().splitlines()) == 2


@pytest.mark.parametrize("n", ["0", "1000000000", "many"])
def test_vary_refuses_a_count_of_zero_or_too_many(text_run, capsys, n):  # noqa: F811
    code, out, err = cli(capsys, "vary", text_run, "the cat", "-n", n)
    assert code == 2 and "error:" in err and not out.strip()


def test_vary_with_non_utf8_bytes_in_the_sentence_gives_no_traceback(text_run):  # noqa: F811
    # A shell passes raw bytes; Python reads them as surrogate escapes.
    result = subprocess.run([sys.executable, "-m", "vaekit.cli", "vary", str(text_run), b"the cat \xff\xfe sat",
                             "-n", "2"], capture_output=True)
    assert b"Traceback" not in result.stderr
    assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == 2

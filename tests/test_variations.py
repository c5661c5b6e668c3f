"""Variations (issue 25): repetition control in decoding, vary's defaults, and bad input to vary."""
import subprocess
import sys

import pytest
import torch

import vaekit
from vaekit.editing import EditConfig, edit_codes, rewrite_positions
from vaekit.generate import DecodeConfig, decode, penalise_repeats
from vaekit.models import build_model
from vaekit.variations import DEFAULT_CHANGE, DEFAULT_SPREAD

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


def test_vary_edits_the_sentence_with_the_documented_defaults(text_run, monkeypatch):  # noqa: F811
    import vaekit.editing

    seen = {}
    original = vaekit.editing.edit_codes

    def spy(model, ids, z, config, *args, **kwargs):
        seen.setdefault("change", config.change)
        return original(model, ids, z, config, *args, **kwargs)

    monkeypatch.setattr(vaekit.editing, "edit_codes", spy)
    run = vaekit.load(text_run)
    out = run.vary("the cat sat on the mat", n=3, seed=0)
    assert len(out) == 3 and seen["change"] == DEFAULT_CHANGE and DEFAULT_SPREAD > 0
    assert all(len(v.split()) == 6 for v in out) and all(v != "the cat sat on the mat" for v in out)  # no deletions
    decoded = run.vary("the cat sat on the mat", n=3, seed=0, config=DecodeConfig())
    assert len(decoded) == 3


def tiny_decoder():
    torch.manual_seed(0)
    return build_model("text-rnn", vocab_size=30, max_len=12, embed_dim=8, encoder_dim=8, decoder_dim=16,
                       latent_dim=4).eval()


def sharp_decoder():
    """tiny_decoder made confident, so that no two candidate sentences tie."""
    model = tiny_decoder()
    with torch.no_grad():
        model.embedding.weight.mul_(30)
        model.to_state.weight.mul_(10)
    return model


def edit_sentence(model, ids, z, change, **settings):
    """One chain: the edit of `ids` under the one code z (D,)."""
    return edit_codes(model, ids, z[None], EditConfig(change=change, **settings))[0]


@pytest.mark.parametrize("change, words", [(0.1, 10), (0.3, 10), (0.5, 7), (1.0, 4), (0.01, 3)])
def test_an_edit_rewrites_that_share_of_the_words_and_no_other(change, words):
    model = tiny_decoder()
    ids = list(range(5, 5 + words))
    outs = edit_codes(model, ids, torch.randn(6, 4), EditConfig(change=change, candidates=5, keep_penalty=float("inf"),
                                                                delete=False))
    assert len(outs) == 6
    for out in outs:
        changed = [i for i, (a, b) in enumerate(zip(ids, out)) if a != b]
        assert len(out) == len(ids) and len(changed) == len(rewrite_positions(words, change))
        assert len(changed) == max(1, round(change * words))
        assert not set(out) & {0, 1, 2, 3}  # never <pad>, <unk>, <bos> or <eos>


@pytest.mark.parametrize("keep_unknown", [True, False])
def test_words_outside_the_vocabulary_stay_unless_asked(keep_unknown):
    model = tiny_decoder()
    ids = [5, 1, 6, 7, 1, 8]  # 1: <unk>
    outs = edit_codes(model, ids, torch.randn(6, 4), EditConfig(change=1.0, candidates=5, keep_penalty=float("inf"),
                                                                keep_unknown=keep_unknown))
    for out in outs:
        assert all(w not in (1, old) for w, old in zip(out, ids) if old != 1)  # every known word rewritten
        assert [out[1], out[4]] == [1, 1] if keep_unknown else 1 not in out


def test_a_sentence_of_no_known_words_is_still_varied():
    out = edit_codes(tiny_decoder(), [1, 1, 1], torch.randn(3, 4), EditConfig(change=1.0, keep_penalty=float("inf")))
    assert all(1 not in o for o in out)


def test_an_edit_prefers_what_the_decoder_finds_likely_given_its_own_code():
    """With the temperature near 0 each rewrite takes the candidate sentence the decoder scores highest:
    rewriting the one word of a sentence picks the argmax of log p(x' | z) over the candidates, each
    chain of the batch under its own code (the chains run together and must not mix)."""
    model = sharp_decoder()  # an untrained decoder is near uniform
    z = torch.randn(8, 4)
    outs = edit_codes(model, [7], z, EditConfig(change=1.0, candidates=26, temperature=1e-4, delete=False))
    x = torch.tensor([[w, 3] for w in range(4, 30) if w != 7])  # every one-word sentence + <eos>
    with torch.no_grad():
        scores = torch.stack([model.log_likelihood(x, code.expand(len(x), -1)) for code in z])  # (8, 25)
    top2 = scores.topk(2, 1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 0.005  # margins the temperature turns into certainty
    best = [int(x[row.argmax(), 0]) for row in scores]
    assert outs == [[b] for b in best] and len(set(best)) > 1  # the codes disagree, so mixing would show


def test_words_outside_the_vocabulary_keep_their_spelling_where_not_rewritten(text_run):  # noqa: F811
    run = vaekit.load(text_run)
    out = run.vary("the qqqzz sat on the mat", n=4, seed=1, config=EditConfig(change=0.2, delete=False))
    assert all(len(v.split()) == 6 for v in out)
    assert any("qqqzz" in v.split() for v in out) and not any("<unk>" in v for v in out)


@pytest.mark.parametrize("bad", [{"change": 0}, {"change": 1.5}, {"change": float("nan")}, {"candidates": 0},
                                 {"temperature": 0}])
def test_bad_edit_settings_are_refused(bad):
    with pytest.raises(vaekit.VaekitError):
        EditConfig(**bad)


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


def test_words_not_rewritten_keep_their_case(text_run):  # noqa: F811
    run = vaekit.load(text_run)
    out = run.vary("The Cat sat on the MAT", n=3, seed=0, config=EditConfig(change=0.2, delete=False))
    assert all(sum(a == b for a, b in zip(v.split(), "The Cat sat on the MAT".split())) == 5 for v in out)


@pytest.mark.parametrize("keep_penalty", [0.0, 3.0, float("inf")])
def test_the_word_already_there_competes_at_its_penalty(keep_penalty):
    """keep_penalty 0 is a Gibbs step (the word stays when its sentence is likeliest); inf always rewrites;
    in between, the word stays only if its sentence beats every other by more than the penalty."""
    model = tiny_decoder()
    z = torch.randn(4)
    x = torch.tensor([[w, 3] for w in range(4, 30)])  # every one-word sentence + <eos>
    scores = model.log_likelihood(x, z.expand(len(x), -1)).detach()
    original = int(x[scores.argmax(), 0])  # the sentence the decoder likes best
    out = edit_sentence(model, [original], z, 1.0, candidates=30, temperature=1e-4, keep_penalty=keep_penalty,
                        delete=False)
    runner_up = scores.topk(2).values
    stays = keep_penalty < float(runner_up[0] - runner_up[1])
    assert (out == [original]) == stays


@pytest.mark.parametrize("change, words", [(0.3, 10), (1.0, 4), (1.0, 2)])
def test_a_visited_word_is_rewritten_or_deleted_and_no_other_changes(change, words):
    ids = list(range(5, 5 + words))
    outs = edit_codes(tiny_decoder(), ids, torch.randn(8, 4),
                      EditConfig(change=change, keep_penalty=float("inf"), delete=True))
    for out in outs:
        assert len(out) == len(ids)  # one entry per position of the input, None where deleted
        assert sum(a != b for a, b in zip(ids, out)) == max(1, round(change * words))
        assert any(w is not None for w in out)  # never the whole sentence deleted


def test_a_deletion_competes_with_the_rewrites_at_what_reinserting_the_word_would_cost():
    """Temperature near 0: the one visited position takes the best of every rewrite's sentence score,
    log p(x' | z) (the word already there 4 nats lower), and the deletion's, log p(x without w_t | z)
    + log p(w_t | the words before it, z) (vaekit.editing, step 4)."""
    model, ids, outcomes = sharp_decoder(), [9, 17, 23], set()
    config = EditConfig(change=0.34, candidates=26, temperature=1e-4, delete=True)  # one position of three
    for seed in range(24):
        z = torch.randn(4, generator=torch.Generator().manual_seed(seed))
        t = rewrite_positions(3, config.change, torch.Generator().manual_seed(seed))[0]
        out = edit_codes(model, ids, z[None], config, torch.Generator().manual_seed(seed))[0]
        with torch.no_grad():
            rewrites = torch.tensor([[*ids[:t], w, *ids[t + 1:], 3] for w in range(4, 30)])  # + <eos>
            scores = model.log_likelihood(rewrites, z.expand(len(rewrites), -1))
            scores[ids[t] - 4] -= config.keep_penalty
            kept = torch.tensor([[*ids[:t], *ids[t + 1:], 3]])
            logits, _ = model.step(torch.tensor([[2, *ids[:t]]]), z[None], model.init_state(z[None]))
            deletion = model.log_likelihood(kept, z[None])[0] + logits[0, -1].log_softmax(-1)[ids[t]]
        best = None if deletion > scores.max() else int(scores.argmax()) + 4
        assert out[t] == best and out[:t] + out[t + 1:] == ids[:t] + ids[t + 1:]
        outcomes.add(best is None)
    assert outcomes == {True, False}  # both a deletion and a rewrite won somewhere: the comparison was tested


def test_vary_deletes_words_only_when_told(text_run, capsys):  # noqa: F811
    sentence = "the cat sat on the mat by the dog"
    lengths = {}
    for flag in ("--delete", "--no-delete"):
        code, out, _ = cli(capsys, "vary", text_run, sentence, "-n", "6", "--change", "1", "--keep-penalty", "inf",
                           flag)
        lines = out.strip().splitlines()
        assert code == 0 and len(lines) == 6
        lengths[flag] = [len(v.split()) for v in lines]
    assert set(lengths["--no-delete"]) == {9} and min(lengths["--delete"]) < 9


def test_vary_keeps_unknown_words_as_typed_unless_told(text_run, capsys):  # noqa: F811
    sentence = "the cat Zanzibar sat on the mat"  # "zanzibar" is not in the tiny run's vocabulary
    kept = {}
    for flag in ("--keep-unknown", "--no-keep-unknown"):
        code, out, err = cli(capsys, "vary", text_run, sentence, "-n", "6", "--change", "1", "--keep-penalty", "inf",
                             flag)
        lines = out.strip().splitlines()
        assert code == 0 and len(lines) == 6 and "zanzibar" in err  # reported as unknown either way
        kept[flag] = sum(v.split()[2] == "Zanzibar" for v in lines)
    assert kept == {"--keep-unknown": 6, "--no-keep-unknown": 0}

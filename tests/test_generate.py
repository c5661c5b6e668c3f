import pytest
import torch

from vaekit.errors import VaekitError
from vaekit.generate import DecodeConfig, decode, filter_logits
from vaekit.models import build_model

EOS = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("text-rnn", vocab_size=30, max_len=8, embed_dim=16, encoder_dim=16, decoder_dim=32).eval()


def sentence_log_prob(model, ids, z):
    """log p(ids | z) of one decoded sentence, counting up to and including <eos>."""
    length = int((ids != 0).sum())
    return model.log_likelihood(ids[:, :length], z).item()


def test_greedy_matches_the_models_own_greedy_and_top1_sampling(model):
    z = torch.randn(4, model.latent_dim)
    greedy = decode(model, z)
    assert torch.equal(greedy, model.decode_mean(z))
    assert torch.equal(decode(model, z, DecodeConfig("sample", top_k=1)), greedy)
    assert torch.equal(decode(model, z, DecodeConfig("beam", beam_size=1)), greedy)


def test_beam_search_finds_sentences_at_least_as_likely_as_greedy(model):
    torch.manual_seed(1)
    z = torch.randn(6, model.latent_dim)
    greedy, beam = decode(model, z), decode(model, z, DecodeConfig("beam", beam_size=5))
    for i in range(len(z)):
        g, b = greedy[i:i + 1], beam[i:i + 1]
        if (b == EOS).any() and (g == EOS).any():
            assert sentence_log_prob(model, b, z[i:i + 1]) >= sentence_log_prob(model, g, z[i:i + 1]) - 1e-4


def test_nothing_follows_eos(model):
    torch.manual_seed(2)
    ids = decode(model, torch.randn(16, model.latent_dim), DecodeConfig("sample", temperature=2.0))
    for row in ids:
        ends = (row == EOS).nonzero()
        if len(ends):
            assert (row[ends[0, 0] + 1:] == 0).all()


def test_top_k_and_nucleus_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, 2, 1.0)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, 0, 0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, 0, 0.81)).tolist() == [[True, True, True, False]]


def test_position_wise_decoding_for_the_documents_model():
    seed = build_model("text-seed", vocab_size=30, max_len=6).eval()
    ids = decode(seed, torch.randn(3, seed.latent_dim))
    assert ids.shape == (3, 6)


@pytest.mark.parametrize("bad,match", [
    (dict(strategy="nope"), "strategy"), (dict(top_p=0.0), "top-p"), (dict(top_p=float("nan")), "top-p"),
    (dict(temperature=0.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(beam_size=0), "beam size"), (dict(beam_size=10**6), "beam size"), (dict(top_k=-1), "top-k"),
])
def test_bad_decoding_settings(bad, match):
    with pytest.raises(VaekitError, match=match):  # the message names the setting at fault
        DecodeConfig(**bad)


def test_a_beam_wider_than_the_vocabulary_decodes():
    model = build_model("text-rnn", vocab_size=12, max_len=5, embed_dim=8, encoder_dim=8, decoder_dim=8,
                        latent_dim=4).eval()
    ids = decode(model, torch.randn(1, model.latent_dim), DecodeConfig("beam", beam_size=50))
    assert ids.shape == (1, 5)


@pytest.mark.parametrize("config", [DecodeConfig(), DecodeConfig("beam", beam_size=3), DecodeConfig("sample"),
                                    DecodeConfig(no_repeat_ngram=2)])
def test_pad_and_bos_are_never_written_even_where_they_are_likeliest(config):
    """<pad> is left out of training's loss, so nothing keeps its logit down; a model that ranks it (or
    <bos>) first must still write words. A written <pad> was invisible and split repetition control."""
    from vaekit.generate import BOS, PAD

    torch.manual_seed(0)
    odd = build_model("text-rnn", vocab_size=30, max_len=8, embed_dim=16, encoder_dim=16, decoder_dim=32,
                      tie_embeddings=False).eval()
    with torch.no_grad():
        odd.to_vocab.bias[PAD] = 50.0
        odd.to_vocab.bias[BOS] = 49.0
    z = torch.randn(6, odd.latent_dim)
    for ids in (decode(odd, z, config), odd.decode_mean(z)):
        for row in ids.tolist():
            words = row[:row.index(EOS)] if EOS in row else row
            assert PAD not in words and BOS not in words, row

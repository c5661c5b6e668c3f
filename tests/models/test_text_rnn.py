"""text-rnn specifics beyond the shared contract."""
import pytest
import torch

from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.models.text_rnn import EOS

SMALL = dict(vocab_size=30, max_len=8, embed_dim=8, encoder_dim=8, decoder_dim=16, latent_dim=4)


@pytest.mark.parametrize("tied", [False, True])
def test_tied_softmax_trains_the_input_embedding_of_words_only_ever_predicted(tied):
    """<eos> is a target but never a decoder input (the input is <bos> + x[:-1]), so its embedding row
    learns only through the output layer, which it is only when the embeddings are tied."""
    torch.manual_seed(0)
    model = build_model("text-rnn", **SMALL, tie_embeddings=tied, dropout=0.0, word_dropout=0.0)
    x = torch.tensor([[5, 6, 7, EOS], [8, 9, EOS, 0]])
    model.log_likelihood(x, torch.randn(2, 4)).sum().backward()  # the decoder alone: the encoder reads <eos>
    eos_row_grad = model.embedding.weight.grad[EOS].abs().sum().item()
    assert (eos_row_grad > 0) == tied
    assert ("to_vocab.weight" in model.state_dict()) != tied  # one matrix, not two


def test_a_run_saved_before_tying_existed_loads_as_the_untied_model_it_was():
    from vaekit.api import model_from_config

    torch.manual_seed(0)
    old = build_model("text-rnn", **SMALL, tie_embeddings=False).eval()
    saved = {k: v for k, v in old.config_dict().items() if k != "tie_embeddings"}  # as an old config.json
    again = model_from_config({"model": {"name": "text-rnn", "config": saved}}).eval()
    again.load_state_dict(old.state_dict())  # strict: the same layers
    x = torch.tensor([[5, 6, 7, EOS]])
    z = old.encode(x).mean
    assert torch.equal(old.log_likelihood(x, z), again.log_likelihood(x, z))
    assert build_model("text-rnn", **SMALL).config.tie_embeddings  # while new runs tie by default


def test_weight_drop_masks_the_recurrent_weights_in_training_and_leaves_evaluation_alone():
    """Weight drop (Merity et al. 2018): while training, about that share of the decoder's recurrent
    weights gets no gradient from a batch (they were not used); in eval mode the model is the one
    without it, bit for bit, and the saved weights are the same tensors."""
    x = torch.tensor([[5, 6, 7, 8, 9, EOS], [8, 9, 10, EOS, 0, 0]])
    z = torch.randn(2, 4)
    torch.manual_seed(0)
    plain = build_model("text-rnn", **SMALL, dropout=0.0, word_dropout=0.0)
    dropped = build_model("text-rnn", **SMALL, dropout=0.0, word_dropout=0.0, weight_drop=0.5)
    dropped.load_state_dict(plain.state_dict())  # strict: no new parameters or buffers
    assert torch.equal(plain.eval().log_likelihood(x, z), dropped.eval().log_likelihood(x, z))

    def unused_share(model):
        model.train().zero_grad()
        model.log_likelihood(x, z).sum().backward()
        return (model.decoder.weight_hh_l0.grad == 0).float().mean().item()

    assert unused_share(plain) < 0.05
    assert 0.4 < unused_share(dropped) < 0.6
    assert not torch.equal(dropped.log_likelihood(x, z), dropped.log_likelihood(x, z))  # a new mask per call
    with pytest.raises(VaekitError, match="weight_drop"):
        build_model("text-rnn", **SMALL, weight_drop=1.0)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_fast_dropout_zeroes_that_share_and_rescales_the_rest_as_dropout_does(p):
    from vaekit.models.text_rnn import fast_dropout

    weight = torch.randn(257, 129)  # an odd number of entries: the 16-bit draws are cut to size
    dropped = fast_dropout(weight, p)
    kept = dropped != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.01  # 33,153 entries: 0.01 is 3.6 standard deviations
    assert torch.allclose(dropped[kept], weight[kept] / (1 - p))
    assert not torch.equal(kept, fast_dropout(weight, p) != 0)
    assert fast_dropout(weight.bfloat16(), p).dtype == torch.bfloat16  # as autocast hands it over


def training_grads(model, x, precision: str) -> dict:
    """Every parameter's gradient of the mean -ELBO of x under `precision`, flattened, in fp32.
    Noise seeded: the z draws, dropout and weight-drop masks are the same for every precision."""
    from vaekit.training import autocast_context

    model.zero_grad()
    torch.manual_seed(1)
    with autocast_context(torch.device("cpu"), precision):
        loss = model(x).neg_elbo.mean()
    loss.backward()
    return {name: p.grad.float().flatten() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16")
@pytest.mark.parametrize("sizes", [dict(decoder_dim=1024), dict(decoder_dim=1024, weight_drop=0.5),
                                   dict(encoder_dim=1024, decoder_dim=64)], ids=["decoder", "weight-drop", "encoder"])
def test_bf16_training_gradients_point_where_fp32_ones_do(sizes):
    """On CPUs with AMX, oneDNN's bf16 LSTM backward sent a 1024-unit LSTM's gradients elsewhere
    (cosine 0.78 to fp32's here, and a PTB run fell 5 nats behind); such LSTMs now train in fp32
    there (models.text_rnn.run_lstm). On CPUs without AMX the bf16 path is the accurate one, so this
    holds either way."""
    torch.manual_seed(0)
    model = build_model("text-rnn", vocab_size=500, max_len=40, dropout=0.0, word_dropout=0.0, **sizes)
    x = torch.randint(4, 500, (32, 30))
    x[:, 25:] = 0

    exact, mixed = training_grads(model, x, "fp32"), training_grads(model, x, "bf16")
    cosines = {name: torch.nn.functional.cosine_similarity(exact[name], mixed[name], 0).item() for name in exact}
    assert min(cosines.values()) > 0.99, cosines

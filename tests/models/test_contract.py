"""Every registered model must pass these: the contract the trainer, CLI and API rely on."""
import pytest
import torch

from vaekit.models import build_model
from vaekit.runs import load_tensors, save_tensors

from . import VARIANTS, build_variant, variant_id


@pytest.fixture(params=VARIANTS, ids=variant_id)
def model(request):
    torch.manual_seed(0)
    return build_variant(request.param)


def test_shapes_and_finite_loss(model):
    x = model.example_input(3)
    terms = model(x)
    assert terms.reconstruction.shape == (3,)
    assert terms.kl_per_dim.shape == (3, model.latent_dim)
    assert torch.isfinite(terms.neg_elbo).all()
    decoded = model.decode_mean(terms.z)
    assert decoded.shape[0] == 3
    if model.kind in ("image", "tabular"):
        assert decoded.shape == x.shape


def test_gradients_reach_every_parameter(model):
    model.train()
    model(model.example_input(4)).neg_elbo.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_encoder_only_parameters_are_the_encoders(model):
    """Refining the encoder (vaekit refine) trains these and nothing else: they must move the
    posterior and leave log p(x | z) for a given z untouched."""
    params = model.encoder_only_parameters()
    assert params, "a model must have parameters only its encoder uses"
    model.eval()
    x = model.example_input(3)
    z = torch.randn(3, model.latent_dim)
    before_mean, before_ll = model.encode(x).mean, model.log_likelihood(x, z)
    with torch.no_grad():
        for p in params:
            p.add_(0.5 * torch.randn_like(p))
    assert not torch.allclose(model.encode(x).mean, before_mean)
    assert torch.equal(model.log_likelihood(x, z), before_ll)


def test_save_load_gives_identical_outputs(model, tmp_path):
    model.eval()
    save_tensors(tmp_path / "w.safetensors", model.state_dict())
    again = build_model(model.name, **model.config_dict()).eval()
    again.load_state_dict(load_tensors(tmp_path / "w.safetensors"))
    x = model.example_input(2)
    z = model.encode(x).mean
    assert torch.equal(z, again.encode(x).mean)
    assert torch.equal(model.decode(z), again.decode(z))


def test_sample_and_reconstruct(model):
    model.eval()
    assert model.sample(5).shape[0] == 5
    x = model.example_input(2)
    assert model.reconstruct(x).shape[0] == 2
    if model.kind == "image":
        assert model.reconstruct(x).shape == x.shape


def test_padding_never_counts(model):
    """Appending padding to a sentence must not change its likelihood (text models only)."""
    if model.kind != "text" or model.name == "text-seed":
        pytest.skip("autoregressive text models only (the document's BiGRU decoder reads padding by design)")
    model.eval()
    x = model.example_input(2)
    z = model.encode(x).mean
    longer = torch.cat([x, torch.zeros(2, 4, dtype=x.dtype)], 1)
    assert torch.allclose(model.encode(longer).mean, z, atol=1e-5)
    assert torch.allclose(model.log_likelihood(x, z), model.log_likelihood(longer, z), atol=1e-4)


def test_seed_is_the_documents_architecture():
    # Parameter count of the design document's Keras model (encoder 69,076 + decoder 65,089).
    model = build_model("seed")
    assert sum(p.numel() for p in model.parameters()) == 134_165
    assert model.latent_dim == 2


def test_summary_counts_every_parameter_once(model):
    from vaekit.summary import model_summary

    lines = model_summary(model).splitlines()
    rows = [int(line.rsplit(None, 1)[1].replace(",", "")) for line in lines[3:] if line[:1] not in "-T N"
            and line.rsplit(None, 1)[-1].replace(",", "").isdigit()]
    total = int(next(line for line in lines if line.startswith("Total params")).split(":")[1].replace(",", ""))
    assert all(r >= 0 for r in rows) and sum(rows) == total

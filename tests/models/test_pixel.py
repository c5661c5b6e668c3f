"""conv-pixel (vaekit/models/pixel.py): the decoder is autoregressive in raster order, and drawing
pixel by pixel (each layer cached, PixelVAE.walk) gives the means of one full pass over the drawn image."""
import pytest
import torch

from vaekit.errors import VaekitError
from vaekit.models import build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("conv-pixel", image_shape=(2, 9, 8), latent_dim=3, pixel_channels=8,
                       pixel_layers=2).eval()


def test_each_pixel_depends_only_on_the_pixels_before_it(model):
    x = torch.rand(1, 2, 9, 8, requires_grad=True)
    features = model.decode(torch.randn(1, 3)).detach()
    for i, j in [(0, 0), (4, 3), (8, 7), (5, 0)]:
        (grad,) = torch.autograd.grad(model.pixel_logits(x, features)[0, :, i, j].sum(), x)
        order = torch.arange(9 * 8).view(9, 8)  # raster position of every pixel
        later = order >= i * 8 + j
        assert grad[0][:, later].abs().max() == 0  # the pixel itself and everything after: unseen
        if (i, j) != (0, 0):
            assert grad[0][:, ~later].abs().max() > 0  # and it does read what came before


def test_drawing_pixel_by_pixel_equals_one_full_pass(model):
    torch.manual_seed(1)
    z = torch.randn(4, 3)
    x, means = model.draw(z)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    full = torch.sigmoid(model.pixel_logits(x, model.decode(z)))
    assert torch.allclose(means, full, atol=1e-6)


def test_8bit_pixels_drawn_one_by_one_follow_the_full_pass():
    """The discretised logistic mixture: levels k/255 drawn pixel by pixel, whose means equal one full
    pass over the drawn image, and whose log-likelihood is finite and teacher-forced the same way."""
    torch.manual_seed(0)
    model = build_model("conv-pixel", image_shape=(1, 6, 5), latent_dim=3, pixel_channels=8, pixel_layers=2,
                        likelihood="logistic-mix").eval()
    z = torch.randn(3, 3)
    x, means = model.draw(z)
    levels = x * 255
    assert torch.equal(levels, levels.round()) and x.min() >= 0 and x.max() <= 1
    assert len(x.unique()) > 2  # not binary
    full = model.likelihood.mean(model.pixel_logits(x, model.decode(z)))
    assert torch.allclose(means, full, atol=1e-5)
    assert torch.isfinite(model.log_likelihood(x, z)).all()


def test_only_discrete_pixels():
    with pytest.raises(VaekitError, match="bernoulli"):
        build_model("conv-pixel", likelihood="gaussian")

import pytest
import torch

from seglab.config import ModelConfig
from seglab.errors import SeglabError
from seglab.models.io import load_model_folder, save_model_folder
from seglab.models.registry import available_models, create_model


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("num_classes", [1, 4])
@pytest.mark.parametrize("size", [(97, 131), (16, 16), (5, 7)])
def test_unet_any_size_channels_and_classes(in_channels, num_classes, size):
    model = create_model(
        ModelConfig(in_channels=in_channels, num_classes=num_classes, depth=3, base_channels=4)
    ).eval()
    out = model(torch.randn(2, in_channels, *size))
    assert out.shape == (2, num_classes, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("norm", ["batch", "instance", "group", "none"])
def test_unet_norms_and_dropout(norm):
    model = create_model(ModelConfig(norm=norm, dropout=0.2, depth=2, base_channels=4))
    model.train()
    out = model(torch.randn(2, 1, 33, 20))
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unet_output_does_not_depend_on_padding_of_other_images():
    model = create_model(ModelConfig(depth=2, base_channels=4)).eval()
    x = torch.randn(1, 1, 30, 30)
    assert torch.allclose(model(x), model(x))


def test_width_and_depth_change_the_parameter_count():
    def count(**kw):
        return sum(p.numel() for p in create_model(ModelConfig(**kw)).parameters())

    assert count(base_channels=8) < count(base_channels=16)
    assert count(depth=2) < count(depth=4)


def test_widths_set_the_channels_of_each_level():
    default = create_model(ModelConfig(depth=2, base_channels=4))
    doubling = create_model(ModelConfig(depth=2, widths=[4, 8, 16]))
    shapes = {k: v.shape for k, v in default.state_dict().items()}
    assert shapes == {k: v.shape for k, v in doubling.state_dict().items()}

    cfg = ModelConfig(name="res_unet", depth=2, widths=[4, 8, 24], deep_supervision=True)
    model = create_model(cfg)
    assert model.down[-1].conv1[0].out_channels == 24  # the bottleneck
    assert model.up[0].in_channels == 24 and model.up[0].out_channels == 8
    out = model.train()(torch.randn(2, 1, 20, 28))
    assert out.shape == (2, 1, 20, 28) and len(model.aux_outputs) == 1


@pytest.mark.parametrize(
    ("widths", "message"),
    [([4, 8], "has 2 levels but model.depth 4 needs 5"), ([4, 8, 0, 8, 8], "in 1..4096")],
)
def test_widths_that_do_not_fit_the_depth_are_rejected(widths, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(widths=widths)


def test_unknown_model_name_is_a_user_error():
    with pytest.raises(SeglabError, match="unknown model.name 'unte'; did you mean unet"):
        create_model(ModelConfig(name="unte"))
    assert "unet" in available_models()


def test_model_folder_round_trip(tmp_path):
    cfg = ModelConfig(in_channels=3, num_classes=2, depth=2, widths=[4, 8, 12])
    model = create_model(cfg).eval()
    meta = {"model": cfg.model_dump(mode="json"), "normalization": {"mean": [0], "std": [1]}}
    save_model_folder(tmp_path / "model", model, meta)
    loaded, loaded_meta = load_model_folder(tmp_path / "model")
    x = torch.randn(1, 3, 20, 24)
    assert torch.equal(model(x), loaded(x))
    assert loaded_meta == meta


def test_loading_a_folder_without_weights_is_a_user_error(tmp_path):
    with pytest.raises(SeglabError, match="not a model folder"):
        load_model_folder(tmp_path)

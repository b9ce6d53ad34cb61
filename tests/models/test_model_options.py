"""Options of the model zoo: gradient checkpointing, deep supervision, front-ends, pretrained."""

from __future__ import annotations

import logging
import time

import pytest
import torch

from seglab.config import ModelConfig
from seglab.errors import SeglabError
from seglab.models import encoders
from seglab.models.blocks import ResidualConvBlock
from seglab.models.registry import create_model
from seglab.models.spectral import SincSpectral

SWIN = dict(name="swin_unet", embed_dim=12, depths=[2, 2, 2], window_size=4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Bytes of the distinct tensors autograd keeps for backward during one forward.

    Tensors saved inside a checkpointed region go through the checkpoint's own hooks
    (and are recomputed in backward), so only what stays alive is counted here.
    """
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.device.type == "cpu" and t.untyped_storage().nbytes():
            seen[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())] = (
                t.untyped_storage().nbytes()
            )
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return sum(seen.values()), out


def test_grad_checkpointing_lowers_saved_activations_and_keeps_outputs():
    torch.manual_seed(0)
    plain = create_model(ModelConfig(**SWIN)).train()
    ckpt = create_model(ModelConfig(**SWIN, grad_checkpointing=True)).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 64, 64)
    plain_bytes, plain_out = saved_activation_bytes(plain, x)
    ckpt_bytes, ckpt_out = saved_activation_bytes(ckpt, x)
    assert ckpt_bytes < 0.5 * plain_bytes, (ckpt_bytes, plain_bytes)
    assert torch.allclose(plain_out, ckpt_out, atol=1e-6)
    plain_out.square().mean().backward()
    ckpt_out.square().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


@pytest.mark.parametrize(
    "cfg",
    [
        dict(name="unet", depth=3, base_channels=4),
        dict(**SWIN),
        dict(name="timm_unet", encoder="mobilenetv3_small_050", base_channels=4),
        dict(name="unet", depth=3, base_channels=4, frontend="spectral_compressor"),
    ],
    ids=["unet", "swin_unet", "timm_unet", "frontend"],
)
def test_deep_supervision_exposes_aux_logits_in_training_only(cfg):
    model = create_model(ModelConfig(**cfg, num_classes=2, deep_supervision=True))
    x = torch.randn(2, 1, 45, 70)
    out = model.train()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 45, 70)
    assert len(model.aux_outputs) >= 1
    # each at its stage's own resolution: a coarse grid of equal cells over the padded input
    extent = model.aux_extent
    assert extent[0] >= 45 and extent[1] >= 70
    for a in model.aux_outputs:
        assert a.shape[:2] == (2, 2) and a.shape[-1] < 70
        assert extent[0] % a.shape[-2] == 0 and extent[1] % a.shape[-1] == 0
    sizes = [a.shape[-1] for a in model.aux_outputs]
    assert sizes == sorted(sizes)  # deepest first
    sum(a.mean() for a in model.aux_outputs).backward()
    with torch.no_grad():
        model.eval()(x)
    assert model.aux_outputs == []


def test_deep_supervision_off_leaves_the_baseline_unet_unchanged():
    base = create_model(ModelConfig())
    assert not hasattr(base, "aux_heads") and not hasattr(base, "se_down")
    assert set(create_model(ModelConfig(deep_supervision=True)).state_dict()) > set(
        base.state_dict()
    )


def test_residual_block_adds_its_first_convolution_back():
    torch.manual_seed(0)
    block = ResidualConvBlock(3, 8).eval()
    x = torch.randn(2, 3, 16, 16)
    first = block.conv1(x)
    assert not torch.allclose(block(x), first)
    torch.nn.init.zeros_(block.conv2[0].weight)  # second convolution silenced: only the shortcut
    assert torch.allclose(block(x), first)


def test_res_unet_has_the_unets_weights_count_and_a_residual_block_at_every_stage():
    plain = create_model(ModelConfig(depth=3, base_channels=4))
    residual = create_model(ModelConfig(name="res_unet", depth=3, base_channels=4))
    count = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in residual.parameters()) == count
    assert sum(isinstance(m, ResidualConvBlock) for m in residual.modules()) == 2 * 3 + 1
    assert not any(isinstance(m, ResidualConvBlock) for m in plain.modules())
    assert create_model(
        ModelConfig(depth=3, base_channels=4, residual=True)
    ).state_dict().keys() == (residual.state_dict().keys())


def test_sinc_filters_are_band_pass_where_their_cutoffs_say():
    frontend = SincSpectral(bands=204, filters=6, out_channels=8)
    bank = frontend.filter_bank().detach()
    assert bank.shape[0] == 6
    response = torch.fft.rfft(bank, n=512).abs()
    freqs = torch.fft.rfftfreq(512)
    low = frontend.low.detach().abs()
    high = low + frontend.band.detach().abs()
    for k in range(6):
        peak = freqs[response[k].argmax()]
        assert low[k] - 0.05 <= peak <= high[k] + 0.05, (k, peak, low[k], high[k])
        if low[k] > 0.1:  # well above the kernel's resolution: the mean level is blocked
            assert response[k, 0] < response[k].max() / 2


def test_sinc_filter_count_and_cutoffs_are_learned():
    cfg = ModelConfig(
        name="unet",
        depth=2,
        base_channels=4,
        in_channels=204,
        frontend="sinc_spectral",
        sinc_filters=5,
        frontend_channels=6,
    )
    model = create_model(cfg)
    assert model.frontend.filters == 5
    model(torch.randn(2, 204, 16, 16)).mean().backward()
    assert model.frontend.low.grad is not None and model.frontend.low.grad.abs().sum() > 0


def test_pretrained_offline_is_a_quick_user_error(monkeypatch):
    monkeypatch.setattr(encoders, "_hub_reachable", lambda timeout=3.0: False)
    cfg = ModelConfig(name="timm_unet", encoder="resnet18", pretrained=True)
    with pytest.raises(SeglabError, match="pretrained weights for 'resnet18'.*pretrained=false"):
        create_model(cfg)


def test_hub_probe_gives_up_after_its_timeout(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://10.255.255.1:9")  # unroutable
    start = time.monotonic()
    assert encoders._hub_reachable(timeout=0.5) is False
    assert time.monotonic() - start < 5


def test_unknown_timm_encoder_is_a_user_error():
    with pytest.raises(SeglabError, match="unknown timm encoder model.encoder='resnet_17'"):
        create_model(ModelConfig(name="timm_unet", encoder="resnet_17"))


def test_fixed_size_encoder_rejects_larger_inputs():
    model = create_model(
        ModelConfig(
            name="coatnet_unet", encoder="coatnet_pico_rw_224", img_size=64, base_channels=4
        )
    ).eval()
    with pytest.raises(SeglabError, match="larger than model.img_size=64"):
        model(torch.randn(1, 1, 65, 40))


@pytest.mark.parametrize(
    ("key", "value"), [("depths", [2, 0, 2]), ("aspp_rates", [1, 100]), ("frontend", "fft")]
)
def test_bad_model_options_are_rejected(key, value):
    with pytest.raises(ValueError):
        ModelConfig(**{key: value})


def test_encoder_without_the_family_options_is_a_user_error():
    with pytest.raises(SeglabError, match="timm encoder 'resnet18' does not accept"):
        create_model(ModelConfig(name="swinv2_aspp_unet", encoder="resnet18"))


def test_deeplab_keeps_the_native_stride_of_encoders_without_output_stride():
    cfg = ModelConfig(name="deeplabv3plus", encoder="swinv2_tiny_window8_256", base_channels=2)
    model = create_model(cfg).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 50, 70)).shape == (1, 1, 50, 70)


def test_frontend_model_folder_round_trip(tmp_path):
    from seglab.models.io import load_model_folder, save_model_folder

    cfg = ModelConfig(
        name="unet",
        depth=2,
        base_channels=4,
        in_channels=205,
        frontend="sinc_spectral",
        sinc_filters=3,
        frontend_channels=4,
    )
    model = create_model(cfg).eval()
    save_model_folder(tmp_path / "m", model, {"model": cfg.model_dump(mode="json")})
    loaded, _ = load_model_folder(tmp_path / "m")
    x = torch.randn(1, 205, 20, 24)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_options_the_chosen_model_does_not_read_are_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="seglab"):
        create_model(ModelConfig(name="res_unet", depth=2, widths=[4, 8, 12], se=True))
    assert not caplog.records  # the U-Net family reads widths and se
    with caplog.at_level(logging.WARNING, logger="seglab"):
        create_model(ModelConfig(**SWIN, widths=[4, 8, 16, 32, 64], frontend_channels=8))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "model.widths is set but swin_unet does not read it "
        "(read by attention_unet, res_unet, se_unet, unet)",
        "model.frontend_channels is set but swin_unet does not read it",
    ]


def test_a_model_folder_reloads_without_warnings_about_its_options(tmp_path, caplog):
    from seglab.models.io import load_model_folder, save_model_folder

    cfg = ModelConfig(**SWIN, base_channels=4)
    save_model_folder(tmp_path / "m", create_model(cfg), {"model": cfg.model_dump(mode="json")})
    caplog.clear()  # creating it warned: swin_unet does not read base_channels
    with caplog.at_level(logging.WARNING, logger="seglab"):
        load_model_folder(tmp_path / "m")
    assert not caplog.records


@pytest.mark.parametrize("fold", [2, 4])
def test_space_to_depth_gives_one_logit_per_pixel_at_any_size(fold):
    torch.manual_seed(0)
    cfg = ModelConfig(name="res_unet", depth=2, base_channels=4, num_classes=2)
    model = create_model(cfg.model_copy(update={"space_to_depth": fold})).eval()
    x = torch.randn(2, 1, 45, 70)  # neither side a multiple of fold * 2**depth
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 2, 45, 70)
    # the U-Net runs at 1/fold resolution, but the logits of the pixels in one fold x fold
    # block come from different channels: the output is not a blocky upsampling
    block = out[:, :, :fold, :fold].flatten(2)
    assert (block.std(dim=2) > 1e-4).all()
    # only the first convolution (fold**2 inputs) and the head (fold**2 logits per class)
    # grow; every level inside keeps the plain U-Net's widths
    plain = create_model(cfg)
    grown = {k for k, v in model.state_dict().items() if v.shape != plain.state_dict()[k].shape}
    assert grown and all(k.startswith(("stem.conv1.0.", "head.")) for k in grown)
    assert model.multiple == fold * 4


def test_space_to_depth_deep_supervision_and_channels_last_train():
    model = create_model(
        ModelConfig(
            name="res_unet", depth=2, base_channels=4, space_to_depth=2, deep_supervision=True
        )
    ).train()
    x = torch.randn(2, 1, 33, 40).contiguous(memory_format=torch.channels_last)
    out = model.to(memory_format=torch.channels_last)(x)
    assert out.shape == (2, 1, 33, 40)
    # padded to 40 x 40, folded to 20 x 20, the stage above the bottleneck at 10 x 10
    assert [a.shape for a in model.aux_outputs] == [(2, 1, 10, 10)]
    assert model.aux_extent == (40, 40)
    (out.mean() + model.aux_outputs[0].mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("fold", [1, 2])
def test_head_kernel_3_gives_each_logit_the_neighbouring_positions(fold):
    torch.manual_seed(0)
    cfg = ModelConfig(name="res_unet", depth=2, base_channels=4, num_classes=2)
    cfg = cfg.model_copy(update={"space_to_depth": fold})
    plain = create_model(cfg).eval()
    wide = create_model(cfg.model_copy(update={"head_kernel": 3})).eval()
    x = torch.randn(2, 1, 45, 70)
    with torch.no_grad():
        assert wide(x).shape == (2, 2, 45, 70)
    # only the output convolution changes: 3 x 3 taps instead of 1
    changed = {k for k, v in wide.state_dict().items() if v.shape != plain.state_dict()[k].shape}
    assert changed == {"head.weight"}
    assert wide.head.weight.shape[-2:] == (3, 3)
    # the head sees the last decoder block's features: a change of those at one position
    # moves the logits of that position alone with 1 x 1, of its neighbours too with 3 x 3
    for net, reach in ((plain, 0), (wide, 1)):
        feats = torch.zeros(1, 4, 9, 9)
        bumped = feats.clone()
        bumped[..., 4, 4] = 1.0
        with torch.no_grad():
            moved = (net.head(bumped) - net.head(feats)).abs().sum(dim=1)[0] > 1e-6
        rows, cols = torch.nonzero(moved, as_tuple=True)
        assert rows.min() == 4 - reach and rows.max() == 4 + reach
        assert cols.min() == 4 - reach and cols.max() == 4 + reach
    with pytest.raises(ValueError, match="head_kernel"):
        ModelConfig(head_kernel=2)


def test_space_to_depth_is_read_by_the_unets_only(caplog):
    with caplog.at_level(logging.WARNING):
        create_model(ModelConfig(**SWIN, space_to_depth=2))
    assert "space_to_depth" in caplog.text
    with pytest.raises(ValueError):
        ModelConfig(space_to_depth=0)

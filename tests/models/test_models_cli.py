from seglab.cli import main


def test_models_command_prints_parameters_and_macs(capsys):
    assert main(["models", "--only", "unet,se_unet", "--size", "32", "--no-timing"]) == 0
    out = capsys.readouterr().out
    assert "GMACs 1x1x32x32" in out and "se_unet" in out
    # the default U-Net: 1,942,289 parameters would be a hard-coded result; compare instead
    from seglab.config import ModelConfig
    from seglab.models.registry import create_model

    n = sum(p.numel() for p in create_model(ModelConfig()).parameters())
    assert f"{n:,}" in out


def test_models_command_rejects_unknown_names(capsys):
    assert main(["models", "--only", "unet,nope"]) == 2
    assert "unknown model in --only: nope" in capsys.readouterr().err

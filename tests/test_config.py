from pathlib import Path

import pytest
import yaml

from seglab.config import Config, apply_override, load_config
from seglab.errors import SeglabError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_builtin_default_matches_configs_default_yaml():
    from_file = load_config(REPO / "configs" / "default.yaml")
    assert from_file == Config()


def test_every_example_config_is_valid():
    paths = sorted((REPO / "configs").glob("*.yaml"))
    assert paths
    for path in paths:
        raw = yaml.safe_load(path.read_text())
        # folder configs point at ../shared/data, which may be absent: only validate keys
        Config.model_validate(raw)


def test_yaml_values_override_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  epochs: 3\noptim:\n  lr: 1.0e-4\n"))
    assert cfg.train.epochs == 3
    assert cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.train.batch_size == Config().train.batch_size


def test_overrides_use_yaml_typing_and_win_over_the_file(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 3\n")
    cfg = load_config(
        path,
        [
            "train.epochs=7",
            "train.progress=false",
            "train.grad_clip=null",
            "data.synthetic.kind=crack",
        ],
    )
    assert cfg.train.epochs == 7 and isinstance(cfg.train.epochs, int)
    assert cfg.train.progress is False
    assert cfg.train.grad_clip is None
    assert cfg.data.synthetic.kind == "crack"


def test_override_creates_missing_sections():
    raw: dict = {}
    apply_override(raw, "data.split.val=0.2")
    assert raw == {"data": {"split": {"val": 0.2}}}


@pytest.mark.parametrize("bad", ["train.epochs", "=3", "train..epochs=3"])
def test_malformed_override_is_a_user_error(bad):
    with pytest.raises(SeglabError, match="override"):
        load_config(None, [bad])


def test_unknown_key_suggests_the_close_match(tmp_path):
    with pytest.raises(SeglabError) as info:
        load_config(write(tmp_path, "train:\n  epoch: 3\n"))
    assert "unknown key train.epoch; did you mean train.epochs?" in str(info.value)
    assert "cfg.yaml" in str(info.value)


def test_unknown_section_suggests_the_close_match():
    with pytest.raises(SeglabError, match="unknown key optimizer; did you mean optim"):
        load_config(None, ["optimizer.lr=0.1"])


def test_unknown_key_without_close_match_lists_the_known_keys():
    with pytest.raises(SeglabError, match="known keys here: .*epochs"):
        load_config(None, ["train.zzzzzz=1"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=0", "train.epochs"),
        ("optim.lr=-1", "optim.lr"),
        ("eval.threshold=1.5", "eval.threshold"),
        ("model.dropout=1.0", "model.dropout"),
        ("data.patch_size=4", "data.patch_size"),
        ("train.precision=8", "train.precision"),
        ("data.split.train=0.9", "data.split"),
        ("name=has space", "name"),
    ],
)
def test_out_of_range_values_name_the_key(override, key):
    with pytest.raises(SeglabError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert f"{key}:" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("written", "meant"),
    [("32", "32"), ("16", "16-mixed"), ("bf16", "bf16-mixed"), ("bf16-mixed", "bf16-mixed")],
)
def test_precision_as_lightning_spells_it(tmp_path, written, meant):
    # `precision: 32` is a number to YAML; it used to be refused as "not '32'"
    assert load_config(None, [f"train.precision={written}"]).train.precision == meant
    path = write(tmp_path, f"train:\n  precision: {written}\n")
    assert load_config(path).train.precision == meant


def test_value_where_a_section_belongs():
    with pytest.raises(SeglabError, match="train must be a section"):
        load_config(None, ["train=5"])


def test_folder_source_needs_a_root():
    with pytest.raises(SeglabError, match="data.root"):
        load_config(None, ["data.source=folder"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SeglabError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(SeglabError, match="malformed YAML at line [23]"):
        load_config(write(tmp_path, "train:\n  epochs: [3\n"))
    with pytest.raises(SeglabError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(None, ["train.epochs=4", "model.num_classes=3"])
    path = write(tmp_path, cfg.to_yaml())
    assert load_config(path) == cfg


def test_relative_data_root_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.source=folder", "data.root=mydata"])
    assert cfg.data.root == str(tmp_path / "mydata")


def test_plateau_on_a_validation_metric_needs_every_epoch_validated():
    with pytest.raises(SeglabError, match="train.val_every is 2") as info:
        load_config(None, ["train.val_every=2", "schedule.name=plateau"])
    assert "\n" not in str(info.value)
    cfg = load_config(None, ["train.val_every=2", "schedule.name=plateau", "schedule.monitor=x"])
    assert cfg.train.val_every == 2
    with pytest.raises(SeglabError, match="train.val_from is 0.5: set train.val_from: 0"):
        load_config(None, ["train.val_from=0.5", "schedule.name=plateau"])
    with pytest.raises(SeglabError, match="val_from"):
        load_config(None, ["train.val_from=1.0"])


def test_postprocessing_tuning_needs_a_binary_model():
    with pytest.raises(SeglabError, match="eval.tune_postprocessing chooses binary") as info:
        load_config(None, ["eval.tune_postprocessing=true", "model.num_classes=3"])
    assert "\n" not in str(info.value)
    assert load_config(None, ["eval.tune_postprocessing=true"]).eval.tune_postprocessing

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger

from seglab.config import load_config
from seglab.data.prepare import prepare_data
from seglab.engine.fit import fit
from seglab.engine.module import lr_factor
from seglab.losses import create_loss
from seglab.models.io import network_weights
from seglab.models.registry import create_model
from seglab.runs import Run, read_csv


def test_a_few_steps_reduce_the_loss_on_a_tiny_batch(tiny_config):
    torch.manual_seed(0)
    data = prepare_data(tiny_config)
    images = torch.stack([torch.from_numpy(s.image) for s in data.train[:2]])
    masks = torch.stack([torch.from_numpy(s.mask) for s in data.train[:2]])
    model = create_model(tiny_config.model)
    loss_fn = create_loss(tiny_config.loss, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = loss_fn(model(images), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]


def test_fit_writes_history_checkpoints_and_returns_best_weights(tmp_path, tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "train.epochs=2"])
    run = Run.create(tmp_path, "fit")
    result = fit(cfg, run, prepare_data(cfg))
    rows = read_csv(run.file("history.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) >= {"epoch", "train_loss", "val_loss", "val_iou", "val_dice", "lr"}
    assert {"val_image_iou", "rss_mb", "peak_gpu_mb", "images_per_s"} <= set(rows[0])
    assert float(rows[0]["rss_mb"]) > 0
    assert all(r["train_loss"] and r["val_iou"] for r in rows)
    assert (run.checkpoints / "best.ckpt").is_file() and (run.checkpoints / "last.ckpt").is_file()
    assert result.epochs_run == 2 and result.best_epoch in (1, 2)
    assert not result.model.training
    # checkpoints hold plain tensors: they load without unpickling code
    torch.load(run.checkpoints / "last.ckpt", weights_only=True)


def test_last_checkpoint_follows_every_epoch_not_only_improvements(tmp_path, tiny_overrides):
    # monitor the epoch number, smaller is better: only the first epoch ever "improves"
    overrides = ["train.epochs=3", "train.checkpoint.monitor=epoch", "train.checkpoint.mode=min"]
    cfg = load_config(None, [*tiny_overrides, *overrides])
    run = Run.create(tmp_path, "last")
    fit(cfg, run, prepare_data(cfg))
    best = torch.load(run.checkpoints / "best.ckpt", weights_only=True)
    last = torch.load(run.checkpoints / "last.ckpt", weights_only=True)
    assert best["epoch"] == 0
    assert last["epoch"] == 2 and last["global_step"] == 3 * best["global_step"]
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_run_keeps_the_best_or_the_last_epochs_weights(tmp_path, tiny_overrides, keep):
    # monitor the epoch number, smaller is better: the first epoch stays the best
    overrides = ["train.epochs=3", "train.checkpoint.monitor=epoch", "train.checkpoint.mode=min"]
    cfg = load_config(None, [*tiny_overrides, *overrides, f"train.checkpoint.keep={keep}"])
    run = Run.create(tmp_path, keep)
    result = fit(cfg, run, prepare_data(cfg))
    best = network_weights(torch.load(run.checkpoints / "best.ckpt", weights_only=True))
    last = network_weights(torch.load(run.checkpoints / "last.ckpt", weights_only=True))
    assert any(not torch.equal(best[k], last[k]) for k in best)  # both written either way
    kept = {"best": best, "last": last}[keep]
    returned = result.model.state_dict()
    assert returned.keys() == kept.keys()
    assert all(torch.equal(returned[k], kept[k]) for k in kept)
    assert result.kept_epoch == {"best": 1, "last": 3}[keep]


def test_an_average_of_the_weights_is_what_validates_checkpoints_and_returns(
    tmp_path, tiny_overrides
):
    from torch.utils.data import DataLoader

    from seglab.data.datasets import ImageDataset
    from seglab.engine.module import SegModule, predict_labels

    cfg = load_config(None, [*tiny_overrides, "train.epochs=3", "train.ema_decay=0.9"])
    data = prepare_data(cfg)
    run = Run.create(tmp_path, "ema")
    result = fit(cfg, run, data)
    best = torch.load(run.checkpoints / "best.ckpt", weights_only=True)
    average, raw = best["state_dict"], best["current_model_state"]
    assert any(not torch.equal(average[k], raw[k]) for k in average)  # training goes on raw
    returned = result.model.state_dict()
    model_keys = [k for k in average if k.startswith("model.")]
    assert all(torch.equal(returned[k.removeprefix("model.")], average[k]) for k in model_keys)
    # the validation figures of the best epoch are those of the average
    module = SegModule(result.model, cfg).eval()
    with torch.no_grad():
        for images, masks in DataLoader(ImageDataset(data.val, data.normalization)):
            module.val_metrics.update(predict_labels(module(images), cfg.eval.threshold), masks)
    rows = read_csv(run.file("history.csv"))
    logged = float(rows[result.best_epoch - 1]["val_iou"])
    assert float(module.val_metrics.compute()["iou"]) == pytest.approx(logged, abs=1e-5)


def test_cosine_schedule_with_warmup(tiny_config):
    cfg = tiny_config.model_copy(deep=True)
    cfg.train.epochs = 10
    cfg.schedule.warmup_epochs = 2
    f = lr_factor(cfg)
    assert f(0) < f(1) < f(2) == 1.0
    assert f(9) < f(5) < f(2)
    assert f(10) >= cfg.schedule.min_lr / cfg.optim.lr


def test_deep_supervision_adds_the_halving_weighted_auxiliary_losses(tiny_config):
    from seglab.engine.module import SegModule

    cfg = tiny_config.model_copy(deep=True)
    cfg.model.deep_supervision = True
    cfg.model.depth = 3
    torch.manual_seed(0)
    module = SegModule(create_model(cfg.model), cfg).train()
    images, masks = torch.rand(2, 1, 32, 32), (torch.rand(2, 32, 32) > 0.7).long()
    loss = module.training_step((images, masks), 0)
    main = module.loss_fn(module(images), masks)  # same weights: the same logits again
    aux = module.model.aux_outputs  # deepest first, at 8 x 8 and 16 x 16
    assert [a.shape[-1] for a in aux] == [8, 16]
    up = [F.interpolate(a, size=(32, 32), mode="bilinear") for a in aux]
    want = main + 0.25 * module.loss_fn(up[0], masks) + 0.5 * module.loss_fn(up[1], masks)
    assert torch.allclose(loss, want) and not torch.allclose(loss, main)
    module.eval()
    module(images)
    assert module.deep_supervision_loss(masks) == 0  # no auxiliary logits at inference


def test_native_deep_supervision_scores_each_output_on_its_own_cells(tiny_config):
    from seglab.engine.module import SegModule

    cfg = tiny_config.model_copy(deep=True)
    cfg.model.deep_supervision = True
    cfg.model.depth = 3
    cfg.loss.aux_resolution = "native"
    torch.manual_seed(0)
    module = SegModule(create_model(cfg.model), cfg).train()
    images, masks = torch.rand(2, 1, 30, 27), (torch.rand(2, 30, 27) > 0.7).long()
    loss = module.training_step((images, masks), 0)
    main = module.loss_fn(module(images), masks)
    aux = module.model.aux_outputs  # the input is padded to 32 x 32: 8 x 8 and 16 x 16 cells

    def repeated(a: torch.Tensor) -> torch.Tensor:  # each logit over its cell's pixels
        factor = 32 // a.shape[-1]
        full = a.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
        return full[..., :30, :27]

    want = main + 0.25 * module.loss_fn(repeated(aux[0]), masks)
    want = want + 0.5 * module.loss_fn(repeated(aux[1]), masks)
    assert torch.allclose(loss, want, rtol=1e-5)
    bilinear = [F.interpolate(a, size=(32, 32), mode="bilinear")[..., :30, :27] for a in aux]
    assert not torch.allclose(
        loss,
        main + 0.25 * module.loss_fn(bilinear[0], masks) + 0.5 * module.loss_fn(bilinear[1], masks),
    )


def test_tensorboard_logger_falls_back_to_csv_with_a_warning_when_absent(
    tmp_path, tiny_config, monkeypatch, caplog
):
    from seglab.engine import fit as fit_module

    cfg = tiny_config.model_copy(deep=True)
    cfg.train.logger = "tensorboard"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    loggers = fit_module._loggers(cfg, Run.create(tmp_path, "tb"))
    assert len(loggers) == 1 and isinstance(loggers[0], CSVLogger)  # CSV only
    assert "tensorboard but it is not installed" in caplog.text


def test_tensorboard_logger_is_added_when_installed(tmp_path, tiny_config):
    pytest.importorskip("tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger

    from seglab.engine import fit as fit_module

    cfg = tiny_config.model_copy(deep=True)
    cfg.train.logger = "tensorboard"
    loggers = fit_module._loggers(cfg, Run.create(tmp_path, "tb"))
    assert any(isinstance(x, TensorBoardLogger) for x in loggers)

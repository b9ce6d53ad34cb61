"""The LightningModule: one training step, one validation step, the optimiser."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import nn

from seglab.config import Config
from seglab.data.augment import build_augment
from seglab.losses import create_loss, probabilities
from seglab.metrics import confusion_counts, summarize


class SegModule(L.LightningModule):
    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.loss_fn = create_loss(cfg.loss, cfg.model.num_classes, cfg.data.ignore_index)
        self._val_counts: list[torch.Tensor] = []
        self.augment = build_augment(cfg.data.augment, cfg.data.ignore_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):  # noqa: ANN001, ANN201
        # batched augmentation on the device (seglab.data.augment), training batches only
        if self.augment is not None and self.trainer.training:
            batch = self.augment(*batch)
        return batch

    def on_train_epoch_start(self) -> None:
        dataset = self.trainer.train_dataloader.dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, masks = batch
        loss = self.loss_fn(self.model(images), masks)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=images.shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        images, masks = batch
        logits = self.model(images)
        loss = self.loss_fn(logits, masks)
        self.log("val_loss", loss, on_epoch=True, batch_size=images.shape[0])
        self._val_counts.append(
            confusion_counts(
                predict_labels(logits, self.cfg.eval.threshold),
                masks,
                self.cfg.model.num_classes,
                self.cfg.data.ignore_index,
            ).cpu()
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val_counts:
            return
        summary = summarize(torch.cat(self._val_counts))["dataset"]
        self._val_counts.clear()
        self.log("val_iou", _finite(summary["iou"]), prog_bar=True)
        self.log("val_dice", _finite(summary["dice"]))

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's own return type
        optimizer = build_optimizer(self.model, self.cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lr_factor(self.cfg))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


def predict_labels(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Class map from logits: threshold the foreground probability, or argmax."""
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits[:, 0]) > threshold).long()
    return probabilities(logits).argmax(dim=1)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """The configured optimiser; no weight decay on norms and biases."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr)
    return torch.optim.AdamW(groups, lr=o.lr)


def lr_factor(cfg: Config):  # noqa: ANN201 - returns a function of the epoch
    """Multiplier of the base learning rate at each epoch (linear warmup, then cosine)."""
    epochs, warmup = cfg.train.epochs, cfg.schedule.warmup_epochs
    floor = min(cfg.schedule.min_lr / cfg.optim.lr, 1.0)

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        if cfg.schedule.name == "constant":
            return 1.0
        progress = (epoch - warmup) / max(1, epochs - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor

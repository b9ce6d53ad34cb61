"""Epochs as a function of (epoch, index), and resuming inside an epoch.

``ResumableSampler`` yields ``(epoch, index)`` keys and ``EpochIndexed`` turns
them into ``dataset.set_epoch(epoch); dataset[index]``, so the patches of an
epoch depend only on the seed, the epoch and the index (also in worker
processes). ``DataProgress`` records in each checkpoint how far the epoch got,
and on resume makes the sampler start at the first batch not yet trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    """``(epoch, 0..n-1)`` in order; after a mid-epoch resume the first pass starts at ``skip``.

    The length stays ``n``: Lightning counts the skipped batches as done.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.epoch = 0
        self.skip = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start, self.skip = self.epoch, self.skip, 0
        return iter([(epoch, i) for i in range(start, self.n)])


class EpochIndexed(Dataset):
    """Indexes a dataset with ``set_epoch`` by ``(epoch, index)`` keys."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


class DataProgress(L.Callback):
    """Keeps the sampler on the trainer's epoch and saves where in the epoch training is."""

    def __init__(self, sampler: ResumableSampler, batch_size: int, skip_done: bool = True) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.skip_done = skip_done  # False with DDP: Lightning splits the sampler's indices
        self.epoch = 0
        self.batches = 0
        self.finished = False

    @property
    def state_key(self) -> str:
        return "DataProgress"

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.batches, "finished": self.finished}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        epoch, batches = int(state_dict["epoch"]), int(state_dict["batches"])
        self.epoch, self.batches, self.finished = epoch, batches, bool(state_dict["finished"])
        if self.finished:
            self.sampler.epoch, self.sampler.skip = epoch + 1, 0
        else:
            self.sampler.epoch = epoch
            self.sampler.skip = batches * self.batch_size if self.skip_done else 0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.epoch != trainer.current_epoch or self.finished:
            self.batches = 0
        self.epoch, self.finished = trainer.current_epoch, False
        self.sampler.epoch = trainer.current_epoch

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.finished = True

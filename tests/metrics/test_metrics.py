import math

import pytest
import torch

from seglab.metrics import confusion_counts, per_image_scores, scores, summarize


def test_binary_counts_and_scores_by_hand():
    pred = torch.tensor([[[1, 1, 0, 0]]])
    truth = torch.tensor([[[1, 0, 1, 0]]])
    counts = confusion_counts(pred, truth, num_classes=1)
    assert counts.tolist() == [[[1, 1, 1, 1]]]
    s = scores(counts[0, 0])
    assert float(s["iou"]) == pytest.approx(1 / 3)
    assert float(s["dice"]) == pytest.approx(0.5)
    assert float(s["precision"]) == pytest.approx(0.5)
    assert float(s["accuracy"]) == pytest.approx(0.5)


def test_ignore_index_pixels_do_not_count():
    pred = torch.tensor([[[1, 1, 0, 0]]])
    truth = torch.tensor([[[1, 255, 255, 0]]])
    counts = confusion_counts(pred, truth, num_classes=1, ignore_index=255)
    assert counts.tolist() == [[[1, 0, 0, 1]]]


def test_dataset_level_and_mean_per_image_differ_as_they_should():
    # image 0: large object found perfectly; image 1: tiny object missed
    pred = torch.zeros(2, 10, 10, dtype=torch.long)
    truth = torch.zeros(2, 10, 10, dtype=torch.long)
    pred[0, :5], truth[0, :5] = 1, 1
    truth[1, 0, 0] = 1
    summary = summarize(confusion_counts(pred, truth, 1))
    assert summary["dataset"]["iou"] == pytest.approx(50 / 51)
    assert summary["per_image_mean"]["iou"] == pytest.approx(0.5)


def test_images_without_the_class_drop_out_of_the_mean():
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    truth = torch.zeros(2, 4, 4, dtype=torch.long)
    pred[0, 0, 0] = truth[0, 0, 0] = 1
    rows = per_image_scores(confusion_counts(pred, truth, 1))
    assert rows[0]["iou"] == 1.0 and math.isnan(rows[1]["iou"])
    assert summarize(confusion_counts(pred, truth, 1))["per_image_mean"]["iou"] == 1.0


def test_multiclass_counts_every_class():
    pred = torch.tensor([[[0, 1, 2, 2]]])
    truth = torch.tensor([[[0, 1, 1, 2]]])
    counts = confusion_counts(pred, truth, num_classes=3)
    assert counts.shape == (1, 3, 4)
    iou = scores(counts[0])["iou"].tolist()
    assert iou == pytest.approx([1.0, 0.5, 0.5])

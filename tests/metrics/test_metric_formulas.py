"""Metrics against torchmetrics and the defining formulas on random class maps."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.functional.classification import (
    binary_f1_score,
    binary_jaccard_index,
    multiclass_jaccard_index,
)

from seglab.metrics import (
    SegMetrics,
    confusion_counts,
    per_class_scores,
    per_image_scores,
    prediction_is_constant,
    summarize,
)

IGNORE = 255
FAST = settings(max_examples=30, deadline=None)


@st.composite
def class_maps(draw, classes=None):
    seed = draw(st.integers(0, 2**31 - 1))
    k = classes or draw(st.sampled_from([1, 3]))
    n, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    g = torch.Generator().manual_seed(seed)
    high = max(2, k)
    pred = torch.randint(0, high, (n, h, w), generator=g)
    target = torch.randint(0, high, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < draw(st.sampled_from([0.0, 0.3]))] = IGNORE
    return pred, target, k


def formula(pred, target, cls):
    """IoU, Dice, precision, recall, accuracy of one class by explicit pixel counting."""
    keep = target != IGNORE
    p, t = (pred == cls) & keep, (target == cls) & keep
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    tn = int(keep.sum()) - tp - fp - fn

    def r(a, b):
        return a / b if b else math.nan

    return {
        "iou": r(tp, tp + fp + fn),
        "dice": r(2 * tp, 2 * tp + fp + fn),
        "precision": r(tp, tp + fp),
        "recall": r(tp, tp + fn),
        "accuracy": r(tp + tn, tp + fp + fn + tn),
    }


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


@FAST
@given(class_maps())
def test_dataset_level_and_per_image_scores_follow_the_formulas(maps):
    pred, target, k = maps
    counts = confusion_counts(pred, target, k, IGNORE)
    classes = [1] if k == 1 else list(range(k))
    per_class = per_class_scores(counts)
    for i, cls in enumerate(classes):
        expected = formula(pred, target, cls)
        for name, value in expected.items():
            assert same(per_class[name][i], value)
    rows = per_image_scores(counts)
    for n, row in enumerate(rows):
        for name in ("iou", "dice"):
            values = [formula(pred[n : n + 1], target[n : n + 1], c)[name] for c in classes]
            finite = [v for v in values if not math.isnan(v)]
            assert same(row[name], sum(finite) / len(finite) if finite else math.nan)
    image_mean = [r["iou"] for r in rows if not math.isnan(r["iou"])]
    assert same(
        summarize(counts)["per_image_mean"]["iou"],
        sum(image_mean) / len(image_mean) if image_mean else math.nan,
    )


@FAST
@given(class_maps(classes=1))
def test_binary_iou_and_dice_agree_with_torchmetrics(maps):
    pred, target, _ = maps
    counts = confusion_counts(pred, target, 1, IGNORE)
    d = summarize(counts)["dataset"]
    truth_or_pred = ((pred == 1) | (target == 1)) & (target != IGNORE)
    if not truth_or_pred.any():
        assert math.isnan(d["iou"])  # nothing to find and nothing found: undefined, not 1 or 0
        return
    assert d["iou"] == pytest.approx(float(binary_jaccard_index(pred, target, ignore_index=IGNORE)))
    assert d["dice"] == pytest.approx(float(binary_f1_score(pred, target, ignore_index=IGNORE)))


@FAST
@given(class_maps(classes=3))
def test_multiclass_per_class_iou_agrees_with_torchmetrics(maps):
    pred, target, k = maps
    ours = per_class_scores(confusion_counts(pred, target, k, IGNORE))["iou"]
    theirs = multiclass_jaccard_index(pred, target, k, average=None, ignore_index=IGNORE)
    for c in range(k):
        if not math.isnan(ours[c]):  # torchmetrics reports absent classes as 0
            assert ours[c] == pytest.approx(float(theirs[c]))


@FAST
@given(class_maps(), st.integers(1, 3))
def test_streaming_metric_equals_one_pass(maps, chunks):
    pred, target, k = maps
    metric = SegMetrics(k, IGNORE)
    for p, t in zip(pred.chunk(chunks), target.chunk(chunks), strict=True):
        metric.update(p, t)
    got = metric.compute()
    summary = summarize(confusion_counts(pred, target, k, IGNORE))
    assert same(got["iou"], summary["dataset"]["iou"])
    assert same(got["image_iou"], summary["per_image_mean"]["iou"])
    if k > 1:
        assert {f"iou_c{c}" for c in range(k)} <= set(got)


def test_empty_and_all_foreground_masks():
    empty = torch.zeros(1, 4, 4, dtype=torch.long)
    full = torch.ones(1, 4, 4, dtype=torch.long)
    # nothing to find, nothing found: IoU undefined (NaN), accuracy perfect
    d = summarize(confusion_counts(empty, empty, 1))["dataset"]
    assert math.isnan(d["iou"]) and d["accuracy"] == 1.0
    # nothing to find but everything predicted: IoU 0, precision 0
    d = summarize(confusion_counts(full, empty, 1))["dataset"]
    assert d["iou"] == 0.0 and d["precision"] == 0.0 and math.isnan(d["recall"])
    # all foreground, found: perfect
    d = summarize(confusion_counts(full, full, 1))["dataset"]
    assert d["iou"] == d["dice"] == d["recall"] == 1.0
    # all foreground, missed: IoU 0, recall 0
    d = summarize(confusion_counts(empty, full, 1))["dataset"]
    assert d["iou"] == 0.0 and d["recall"] == 0.0


def test_constant_predictions_are_detected():
    target = torch.tensor([[[0, 1, 1, 0]]])
    assert prediction_is_constant(confusion_counts(torch.zeros_like(target), target, 1))
    assert not prediction_is_constant(confusion_counts(target, target, 1))
    three = torch.tensor([[[0, 1, 2, 2]]])
    assert prediction_is_constant(confusion_counts(torch.full_like(three, 2), three, 3))
    assert not prediction_is_constant(confusion_counts(three, three, 3))

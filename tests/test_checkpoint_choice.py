"""bench/checkpoint_choice.py: rules for keeping an epoch, judged on the other half of
validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seglab.runs import Run


@pytest.fixture
def choice(bench_module):
    return bench_module("checkpoint_choice")


def test_halves_leave_out_the_slice_between_them(choice):
    assert choice.halves(29) == (list(range(14)), list(range(15, 29)))
    assert choice.halves(4) == ([0], [2, 3])
    with pytest.raises(SystemExit, match="cannot be split"):
        choice.halves(2)


def table(peak_at: float, height: float) -> dict[float, float]:
    """IoU by threshold: ``height`` at ``peak_at``, falling off linearly around it."""
    grid = [round(0.05 + 0.01 * i, 2) for i in range(91)]
    return {t: height - abs(t - peak_at) for t in grid}


def test_rules_choose_by_the_fixed_threshold_the_tuned_one_or_the_last_epoch(choice):
    # epoch 2 is best at 0.5; epoch 3 is miscalibrated (peak at 0.8) but higher when tuned
    tables = {1: table(0.5, 0.70), 2: table(0.5, 0.80), 3: table(0.8, 0.85), 4: table(0.5, 0.6)}

    assert choice.choose("fixed", tables, 0.5) == 2
    assert choice.choose("tuned", tables, 0.5) == 3
    assert choice.choose("last", tables, 0.5) == 4


def test_each_choice_is_scored_on_the_other_half_at_the_choosing_halfs_threshold(choice):
    # tuned, half A prefers epoch 1 (at 0.3), half B epoch 2 (at 0.6); at 0.5 A prefers 2
    tables = {
        1: [table(0.3, 0.9), table(0.6, 0.5)],
        2: [table(0.5, 0.75), table(0.6, 0.8)],
    }

    a_to_b, b_to_a = choice.judge(0.5, tables)

    assert a_to_b["direction"] == "A>B" and b_to_a["direction"] == "B>A"
    assert a_to_b["tuned_epoch"] == 1 and a_to_b["tuned_threshold"] == pytest.approx(0.3)
    assert a_to_b["tuned_iou"] == pytest.approx(0.5 - 0.3)  # B's table for epoch 1, at 0.3
    assert a_to_b["fixed_epoch"] == 2 and a_to_b["fixed_threshold"] == pytest.approx(0.5)
    assert a_to_b["fixed_iou"] == pytest.approx(0.8 - 0.1)  # B's table for epoch 2, at 0.5
    assert b_to_a["tuned_epoch"] == 2 and b_to_a["tuned_threshold"] == pytest.approx(0.6)
    assert b_to_a["tuned_iou"] == pytest.approx(0.75 - 0.1)  # A's table for epoch 2, at 0.6
    assert a_to_b["last_epoch"] == b_to_a["last_epoch"] == 2
    assert a_to_b["oracle_iou"] == pytest.approx(max(0.5 - 0.3, 0.8 - 0.1))


def test_a_run_without_every_epochs_weights_is_refused_and_one_with_them_is_scored(
    choice, tiny_quality_run, tmp_path
):
    overrides = [
        "data.synthetic.n_images=24",
        "train.epochs=3",
        "train.checkpoint.every_n_epochs=1",
        "seed=1",
    ]
    record = tiny_quality_run("name: tiny\neval:\n  tta: none\n", overrides)
    run = Run.open(record["run"])

    fixed, tables = choice.iou_tables(run)

    assert fixed == 0.5
    assert sorted(tables) == choice.validated_epochs(run) == [1, 2, 3]
    assert all(len(halves) == 2 for halves in tables.values())
    history = choice.validation_history(run)
    moved = choice.swings(run)
    assert moved["validations"] == 2
    assert moved["mean_change"] == pytest.approx(abs(history[3] - history[2]))
    assert moved["last5_mean"] == pytest.approx((history[2] + history[3]) / 2)
    rows = choice.judge(fixed, tables)
    assert {row["last_epoch"] for row in rows} == {3}
    for row in rows:
        assert row["oracle_iou"] >= max(row[f"{rule}_iou"] for rule in choice.RULES)

    # the average of one epoch is that epoch; of two, scored at the other half's threshold
    assert choice.average_tables(run, 1) == ([3], tables[3])
    epochs, averaged = choice.average_tables(run, 2)
    assert epochs == [2, 3] and len(averaged) == 2
    a_to_b, b_to_a = choice.judge_average(averaged)
    assert a_to_b["average_iou"] == averaged[1][a_to_b["average_threshold"]]
    assert b_to_a["average_iou"] == averaged[0][b_to_a["average_threshold"]]
    # --average beside the earlier records of the same run (one per direction)
    paired = [
        {"run": record["run"], "direction": d, "fixed_epoch": 1, "fixed_iou": 0.5}
        | {"last_epoch": 3, "last_iou": 0.6}
        for d in ("A>B", "B>A")
    ]
    choice.averages([record], 2, paired, tmp_path / "average.jsonl")
    written = choice.read_records([tmp_path / "average.jsonl"])
    assert [(r["direction"], r["average_epochs"], r["fixed_iou"]) for r in written] == [
        ("A>B", [2, 3], 0.5),
        ("B>A", [2, 3], 0.5),
    ]
    assert [r["average_iou"] for r in written] == [a_to_b["average_iou"], b_to_a["average_iou"]]
    with pytest.raises(SystemExit, match="--paired has no record of .* B>A"):
        choice.averages([record], 2, paired[:1], None)

    # the mean prediction of the top K epochs on the choosing half: K = 1 is `fixed`'s
    # epoch, scored the same; K = 3 averages all three
    ensembles = choice.judge_ensembles(run, fixed, tables, [1, 3])
    predicted = {}
    assert choice.iou_tables(run, predicted) == (fixed, tables)
    assert sorted(predicted) == [1, 2, 3]
    # the maps kept by iou_tables give what predicting again gives
    assert choice.judge_ensembles(run, fixed, tables, [1, 3], predicted) == ensembles
    for row, ensemble in zip(rows, ensembles, strict=True):
        assert ensemble["direction"] == row["direction"]
        assert ensemble["ensemble1_epochs"] == [row["fixed_epoch"]]
        assert ensemble["ensemble1_threshold"] == row["fixed_threshold"]
        assert ensemble["ensemble1_iou"] == row["fixed_iou"]
        assert sorted(ensemble["ensemble3_epochs"]) == [1, 2, 3]
        assert 0.0 <= ensemble["ensemble3_iou"] <= 1.0

    choice.epoch_weights(run)[2].unlink()
    with pytest.raises(SystemExit, match="no weights of epoch 2.*every_n_epochs=1"):
        choice.iou_tables(run)
    with pytest.raises(SystemExit, match="last 2 epochs' weights are not all there"):
        choice.average_tables(run, 2)


def test_the_average_of_states_averages_weights_and_statistics_not_counts(choice):
    first = {
        "w": torch.tensor([1.0, 2.0]),
        "bn.running_var": torch.tensor([1.0]),
        "n": torch.tensor(3),
    }
    second = {
        "w": torch.tensor([3.0, 6.0]),
        "bn.running_var": torch.tensor([3.0]),
        "n": torch.tensor(5),
    }

    average = choice.average_state([first, second])

    assert torch.equal(average["w"], torch.tensor([2.0, 4.0]))
    assert torch.equal(average["bn.running_var"], torch.tensor([2.0]))
    assert torch.equal(average["n"], torch.tensor(5))


def test_epochs_are_ranked_by_the_fixed_threshold_and_their_maps_averaged(choice):
    tables = {1: table(0.5, 0.70), 2: table(0.5, 0.80), 3: table(0.8, 0.85), 4: table(0.5, 0.8)}

    # epoch 3 peaks at 0.8 (0.55 at 0.5); 2 and 4 tie at 0.5, the later first
    assert choice.ranked(tables, 0.5) == [4, 2, 1, 3]
    assert choice.choose("fixed", tables, 0.5) == choice.ranked(tables, 0.5)[0]

    zeros, ones = np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)
    first = [[zeros], [ones, zeros]]  # one epoch: [half A maps, half B maps]
    second = [[ones], [ones, ones]]
    mean = choice.mean_probabilities([first, second])
    assert [[m.tolist() for m in half] for half in mean] == [
        [np.full((2, 3), 0.5).tolist()],
        [ones.tolist(), np.full((2, 3), 0.5).tolist()],
    ]
    assert mean[0][0].dtype == np.float32

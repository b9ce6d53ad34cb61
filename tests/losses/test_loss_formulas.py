"""Every loss against hand-computed values and its defining formula on random inputs."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.config import LossConfig
from seglab.errors import SeglabError
from seglab.losses import (
    available_losses,
    binary_ce_dice,
    create_loss,
    cross_entropy,
    focal_loss,
    soft_dice_loss,
    soft_jaccard_loss,
    tversky_loss,
)

IGNORE = 255
FAST = settings(max_examples=25, deadline=None)


@st.composite
def batches(draw, binary: bool | None = None):
    """Random logits (N, C, H, W) and targets with some ignored pixels, from a drawn seed."""
    seed = draw(st.integers(0, 2**31 - 1))
    classes = 1 if binary else draw(st.sampled_from([1, 3] if binary is None else [2, 4]))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, h, w, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, max(2, classes), (n, h, w), generator=g)
    ignored = torch.rand(n, h, w, generator=g) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    target[ignored] = IGNORE
    return logits, target


def reference_terms(logits, target):
    """Soft TP, FP, FN per channel by explicit loops over kept pixels (the definition)."""
    n, c, h, w = logits.shape
    probs = torch.sigmoid(logits) if c == 1 else logits.softmax(1)
    channels = [1] if c == 1 else list(range(c))
    tp, fp, fn = [0.0] * c, [0.0] * c, [0.0] * c
    for i in range(n):
        for y in range(h):
            for x in range(w):
                t = int(target[i, y, x])
                if t == IGNORE:
                    continue
                for k, cls in enumerate(channels):
                    p = float(probs[i, k, y, x])
                    truth = 1.0 if t == cls else 0.0
                    tp[k] += p * truth
                    fp[k] += p * (1 - truth)
                    fn[k] += (1 - p) * truth
    return tp, fp, fn


def reference_pixels(logits, target, per_pixel):
    """Mean of per_pixel(probabilities at the pixel, class) over kept pixels."""
    n, c, h, w = logits.shape
    values = []
    for i in range(n):
        for y in range(h):
            for x in range(w):
                t = int(target[i, y, x])
                if t == IGNORE:
                    continue
                z = logits[i, :, y, x]
                values.append(per_pixel(z, t))
    return sum(values) / len(values) if values else 0.0


def _bce_pixel(z, t):
    p = float(torch.sigmoid(z[0]))
    return -math.log(p) if t == 1 else -math.log(1 - p)


def _ce_pixel(z, t):
    return -float(z.log_softmax(0)[t])


# --------------------------------------------------------------------------- by hand


def test_bce_by_hand():
    logits = torch.tensor([[[[0.0, 2.0, 5.0]]]])
    target = torch.tensor([[[0, 1, IGNORE]]])
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert float(cross_entropy(logits, target, IGNORE)) == pytest.approx(expected, rel=1e-6)


def test_dice_jaccard_tversky_by_hand():
    # probabilities 0.5 everywhere, truth 1 1 0 0: TP=1, FP=1, FN=1
    logits = torch.zeros(1, 1, 1, 4)
    target = torch.tensor([[[1, 1, 0, 0]]])
    assert float(soft_dice_loss(logits, target, smooth=0)) == pytest.approx(1 - 2 / 4)
    assert float(soft_jaccard_loss(logits, target, smooth=0)) == pytest.approx(1 - 1 / 3)
    assert float(tversky_loss(logits, target, 0.3, 0.7, smooth=0)) == pytest.approx(1 - 1 / 2)
    assert float(soft_dice_loss(logits, target, smooth=1)) == pytest.approx(1 - 3 / 5)


def test_focal_by_hand():
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])  # p = 0.5 and 0.75
    target = torch.tensor([[[0, 1]]])
    pixel0 = 0.75 * 0.5**2 * math.log(2)  # background: weight 1 - alpha
    pixel1 = 0.25 * 0.25**2 * -math.log(0.75)
    got = float(focal_loss(logits, target, alpha=0.25, gamma=2.0))
    assert got == pytest.approx((pixel0 + pixel1) / 2, rel=1e-5)


def test_empty_and_full_masks_have_near_zero_region_loss_when_predicted_right():
    empty = torch.zeros(2, 8, 8, dtype=torch.long)
    full = torch.ones(2, 8, 8, dtype=torch.long)
    for target in (empty, full):
        right = (target.float() * 40 - 20).unsqueeze(1)
        for name in ("dice", "jaccard", "tversky", "bce", "focal", "focal_dice", "dice_ce"):
            loss = create_loss(LossConfig(name=name), 1, IGNORE)
            assert float(loss(right, target)) < 1e-2, name
            assert float(loss(-right, target)) > 0.1, name


def test_all_ignored_gives_zero_and_a_finite_gradient():
    target = torch.full((1, 4, 4), IGNORE)
    for name in available_losses():
        if name == "sum":
            continue
        for classes in (1, 3):
            logits = torch.randn(1, classes, 4, 4, requires_grad=True)
            loss = create_loss(LossConfig(name=name), classes, IGNORE)(logits, target)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(logits.grad).all(), name


def test_ce_class_weights_match_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 5, generator=g)
    target = torch.randint(0, 3, (2, 5, 5), generator=g)
    target[0, 0] = IGNORE
    weights = [0.2, 1.0, 3.0]
    expected = F.cross_entropy(logits, target, torch.tensor(weights), ignore_index=IGNORE)
    loss = create_loss(LossConfig(name="ce", class_weights=weights), 3, IGNORE)
    assert float(loss(logits, target)) == pytest.approx(float(expected), rel=1e-5)


def test_class_weights_of_the_wrong_length_are_a_user_error():
    with pytest.raises(SeglabError, match="class_weights has 2 values, expected 3"):
        create_loss(LossConfig(name="ce", class_weights=[1, 2]), 3, IGNORE)


def test_pairs_and_sums_are_the_weighted_sums_of_their_terms():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 6, 6, generator=g)
    target = torch.randint(0, 2, (2, 6, 6), generator=g)
    focal = float(create_loss(LossConfig(name="focal"), 1)(logits, target))
    dice = float(create_loss(LossConfig(name="dice"), 1)(logits, target))
    ce = float(create_loss(LossConfig(name="ce"), 1)(logits, target))
    fd = float(create_loss(LossConfig(name="focal_dice"), 1)(logits, target))
    assert fd == pytest.approx(0.6 * focal + 0.4 * dice, rel=1e-6)
    fd2 = float(create_loss(LossConfig(name="focal_dice", weights=[1, 2]), 1)(logits, target))
    assert fd2 == pytest.approx(focal + 2 * dice, rel=1e-6)
    s = LossConfig(name="sum", terms={"ce": 0.3, "dice": 0.2, "focal": 1.5})
    total = float(create_loss(s, 1)(logits, target))
    assert total == pytest.approx(0.3 * ce + 0.2 * dice + 1.5 * focal, rel=1e-6)
    assert float(create_loss(LossConfig(), 1)(logits, target)) == pytest.approx(
        0.5 * ce + 0.5 * dice, rel=1e-6
    )


def test_unknown_term_is_a_user_error():
    with pytest.raises(SeglabError, match="unknown loss.terms key 'dcie'"):
        create_loss(LossConfig(name="sum", terms={"dcie": 1.0}), 1)


# --------------------------------------------------------------------------- formulas


@FAST
@given(batches(), st.one_of(st.just(0.0), st.floats(1e-3, 2.0)))
def test_region_losses_follow_their_formulas(batch, smooth):
    logits, target = batch
    tp, fp, fn = reference_terms(logits, target)
    k = len(tp)

    def mean(values):
        return sum(values) / k

    def ratio(num, den):
        return num / den if den > 0 else 1.0  # 0/0 with smooth 0: the loss clamps to 1 - 0

    dice = 1 - mean(
        [ratio(2 * a + smooth, 2 * a + b + c + smooth) for a, b, c in zip(tp, fp, fn, strict=True)]
    )
    jac = 1 - mean(
        [ratio(a + smooth, a + b + c + smooth) for a, b, c in zip(tp, fp, fn, strict=True)]
    )
    tv = 1 - mean(
        [
            ratio(a + smooth, a + 0.3 * b + 0.7 * c + smooth)
            for a, b, c in zip(tp, fp, fn, strict=True)
        ]
    )
    got = (
        soft_dice_loss(logits, target, smooth, IGNORE),
        soft_jaccard_loss(logits, target, smooth, IGNORE),
        tversky_loss(logits, target, 0.3, 0.7, smooth, IGNORE),
    )
    for value, expected in zip(got, (dice, jac, tv), strict=True):
        if smooth == 0 and any(a + b + c == 0 for a, b, c in zip(tp, fp, fn, strict=True)):
            continue  # 0/0: undefined by the formula
        assert float(value) == pytest.approx(expected, rel=1e-6, abs=1e-9)


@FAST
@given(batches())
def test_cross_entropy_and_focal_follow_their_formulas(batch):
    logits, target = batch
    binary = logits.shape[1] == 1
    ce = reference_pixels(logits, target, _bce_pixel if binary else _ce_pixel)
    assert float(cross_entropy(logits, target, IGNORE)) == pytest.approx(ce, rel=1e-6, abs=1e-9)

    def focal_pixel(z, t):
        if binary:
            p = float(torch.sigmoid(z[0]))
            pt, at = (p, 0.25) if t == 1 else (1 - p, 0.75)
        else:
            pt, at = float(z.softmax(0)[t]), 1.0
        return -at * (1 - pt) ** 2 * math.log(pt)

    fl = reference_pixels(logits, target, focal_pixel)
    assert float(focal_loss(logits, target, 0.25, 2.0, IGNORE)) == pytest.approx(
        fl, rel=1e-5, abs=1e-9
    )


@FAST
@given(batches())
def test_ignored_pixels_change_nothing(batch):
    logits, target = batch
    noisy = logits.clone()
    noisy[(target == IGNORE).unsqueeze(1).expand_as(logits)] = 1e3
    for name in ("ce", "focal", "dice", "jaccard", "tversky", "focal_dice", "dice_ce"):
        loss = create_loss(LossConfig(name=name), logits.shape[1], IGNORE)
        assert float(loss(noisy, target)) == pytest.approx(float(loss(logits, target)), abs=1e-9)


@FAST
@given(batches())
def test_tversky_with_equal_halves_is_dice(batch):
    logits, target = batch
    # (TP + s/2) / (TP + FP/2 + FN/2 + s/2) = (2 TP + s) / (2 TP + FP + FN + s)
    assert float(tversky_loss(logits, target, 0.5, 0.5, 0.5, IGNORE)) == pytest.approx(
        float(soft_dice_loss(logits, target, 1.0, IGNORE)), abs=1e-9
    )


@FAST
@given(batches(binary=True))
def test_focal_without_focusing_or_balance_is_bce(batch):
    logits, target = batch
    assert float(focal_loss(logits, target, None, 0.0, IGNORE)) == pytest.approx(
        float(cross_entropy(logits, target, IGNORE)), rel=1e-6, abs=1e-9
    )


@FAST
@given(batches(), st.floats(0.0, 2.0))
def test_without_an_ignore_index_the_losses_are_the_same_as_with_nothing_ignored(batch, smooth):
    # the losses take shorter paths when no ignore_index is set; with no pixel ignored they
    # must give what the masked paths (checked against the formulas above) give
    logits, target = batch
    target = torch.where(target == IGNORE, torch.zeros_like(target), target)
    for name in ("ce", "dice", "jaccard", "tversky", "bce_dice"):
        cfg = LossConfig(name=name, smooth=smooth)
        plain = create_loss(cfg, logits.shape[1], None)(logits, target)
        masked = create_loss(cfg, logits.shape[1], IGNORE)(logits, target)
        assert float(plain) == pytest.approx(float(masked), rel=1e-5, abs=1e-7)


@FAST
@given(batches(binary=True), st.sampled_from([0.0, 1.0]), st.booleans())
def test_fused_ce_dice_has_the_value_and_gradient_of_its_terms(batch, smooth, ignoring):
    logits, target = batch
    ignore = IGNORE if ignoring else None
    if not ignoring:
        target = target.clamp(max=1)
    fused_in, terms_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    fused = binary_ce_dice(fused_in, target, 0.3, 0.7, smooth=smooth, ignore_index=ignore)
    terms = 0.3 * cross_entropy(terms_in, target, ignore) + 0.7 * soft_dice_loss(
        terms_in, target, smooth=smooth, ignore_index=ignore
    )
    fused.backward()
    terms.backward()
    assert fused.item() == pytest.approx(terms.item(), abs=1e-10)
    torch.testing.assert_close(fused_in.grad, terms_in.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["bce_dice", "dice_ce"])
def test_binary_ce_dice_pairs_match_their_terms_with_ignored_pixels(name):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 1, 9, 7, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 2, (2, 9, 7), generator=g)
    target[0, :3] = IGNORE
    cfg = LossConfig(name=name, weights=[0.25, 1.5])
    first, second = name.split("_")
    terms = create_loss(LossConfig(name="sum", terms={first: 0.25, second: 1.5}), 1, IGNORE)
    pair = create_loss(cfg, 1, IGNORE)
    pair_loss, terms_loss = pair(logits, target), terms(logits, target)
    (grad_pair,) = torch.autograd.grad(pair_loss, logits)
    (grad_terms,) = torch.autograd.grad(terms_loss, logits)
    assert pair_loss.item() == pytest.approx(terms_loss.item(), rel=1e-12)
    torch.testing.assert_close(grad_pair, grad_terms)


def test_fused_ce_dice_scores_bfloat16_logits_in_float32_under_autocast():
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(4, 1, 64, 64, generator=g) * 3).bfloat16()
    target = torch.randint(0, 2, (4, 64, 64), generator=g)
    exact = logits.double()
    reference = 0.5 * cross_entropy(exact, target) + 0.5 * soft_dice_loss(exact, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in bf16-mixed training
        fused = binary_ce_dice(logits, target, 0.5, 0.5, ignore_index=IGNORE)
    assert fused.dtype == torch.float32
    assert fused.item() == pytest.approx(reference.item(), rel=1e-6)

"""Loss functions on (N, C, H, W) logits and (N, H, W) class maps.

One channel means binary (sigmoid, the channel is the foreground); more
channels mean softmax over classes. Pixels whose target is ``ignore_index``
count nowhere: not in a mean, not in a Dice overlap. Pixel losses average over
the kept pixels; region losses (Dice, Jaccard, Tversky) pool the kept pixels
of the whole batch per channel and average the channels.

The target may also be a :class:`PooledTarget` (:func:`pool_target`): the class
fractions of a class map over the cells of a coarser grid, for logits at that
grid's resolution (deep supervision at each output's own resolution). Every loss
then equals the loss of the same logits repeated over each cell's pixels (nearest
upsampling) against the full-resolution map, without computing it at full resolution.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss


class PooledTarget(NamedTuple):
    """A class map pooled over the cells of a coarser grid.

    ``fractions`` (N, K, h, w): the share of each class among a cell's kept pixels,
    K = 2 (background, foreground) for one output channel, else the classes;
    ``keep`` (N, h, w): the share of the cell's pixels that count; ``area``: pixels
    per cell.
    """

    fractions: torch.Tensor
    keep: torch.Tensor
    area: int


def cells_divide(extent: tuple[int, int] | torch.Size, size: tuple[int, int] | torch.Size) -> bool:
    """Whether a ``size`` grid splits ``extent`` into equal cells, as :func:`pool_target` needs."""
    return extent[0] % size[0] == 0 and extent[1] % size[1] == 0


def pool_target(
    target: torch.Tensor,
    size: tuple[int, int] | torch.Size,
    channels: int,
    ignore_index: int | None = None,
    extent: tuple[int, int] | torch.Size | None = None,
) -> PooledTarget:
    """Pool an (N, H, W) class map over a ``size`` grid of equal cells.

    ``extent`` (at least H x W; default H x W) is the area the grid covers, the class
    map padded at the bottom and right with pixels that do not count (a model that pads
    its input to a multiple). Each side of ``extent`` must be a multiple of ``size``'s.
    """
    height, width = target.shape[-2:]
    ext_h, ext_w = (height, width) if extent is None else (int(extent[0]), int(extent[1]))
    cells_h, cells_w = int(size[0]), int(size[1])
    if ext_h < height or ext_w < width or not cells_divide((ext_h, ext_w), (cells_h, cells_w)):
        raise ValueError(
            f"cannot pool a {height}x{width} class map padded to {ext_h}x{ext_w} "
            f"into {cells_h}x{cells_w} equal cells"
        )
    kernel = (ext_h // cells_h, ext_w // cells_w)
    keep = valid_mask(target, ignore_index)
    # planes to pool: the kept pixels of each class, then the kept pixels
    if channels == 1:  # binary: the foreground is enough, the background is the rest
        planes = torch.stack([(target == 1) & keep, keep], dim=1).float()
    else:
        classes = F.one_hot(target.clamp(0, channels - 1), channels) & keep.unsqueeze(-1)
        planes = torch.cat([classes, keep.unsqueeze(-1)], dim=-1).permute(0, 3, 1, 2).float()
    padding = (0, ext_w - width, 0, ext_h - height)
    pooled = F.avg_pool2d(F.pad(planes, padding) if any(padding) else planes, kernel)
    counts, kept = pooled[:, :-1], pooled[:, -1:]
    if channels == 1:
        counts = torch.cat([kept - counts, counts], dim=1)
    fractions = counts / kept.clamp(min=1e-12)
    return PooledTarget(fractions, kept[:, 0], kernel[0] * kernel[1])


def _pooled_pixel_mean(
    per_class: torch.Tensor,
    target: PooledTarget,
    logits: torch.Tensor,
    class_weights: list[float] | None,
    normalise_by_weight: bool,
) -> torch.Tensor:
    """Mean over kept pixels of a pixel loss given for each class (N, K, h, w).

    A cell's pixels of class k each add ``per_class[:, k]`` (times the class weight);
    the mean divides by the kept pixels, or by their summed class weights.
    """
    fractions = target.fractions.to(per_class.dtype)
    keep = target.keep.to(per_class.dtype)
    if class_weights is not None:
        weights = torch.tensor(class_weights, dtype=per_class.dtype, device=per_class.device)
        fractions = fractions * weights.view(1, -1, 1, 1)
    total = ((fractions * per_class).sum(1) * keep).sum()
    norm = (fractions.sum(1) * keep).sum() if normalise_by_weight else keep.sum()
    return total / norm if norm > 0 else logits.sum() * 0.0


def _class_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log p of each class (N, K, h, w): K = 2 (background, foreground) for one channel."""
    if logits.shape[1] == 1:
        return torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=1)
    return logits.log_softmax(dim=1)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid for one output channel, softmax otherwise."""
    return torch.sigmoid(logits) if logits.shape[1] == 1 else logits.softmax(dim=1)


def one_hot(target: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, H, W) class map -> (N, C, H, W) float; one channel = the foreground."""
    if channels == 1:
        return (target == 1).unsqueeze(1).float()
    return F.one_hot(target.clamp(0, channels - 1), channels).permute(0, 3, 1, 2).float()


def valid_mask(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """(N, H, W) bool: the pixels that count."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def _masked_mean(values: torch.Tensor, keep: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over kept pixels; 0 (still attached to the graph) when none is kept."""
    n = keep.sum()
    if n == 0:
        return logits.sum() * 0.0
    return (values * keep).sum() / n


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int | None = None,
    class_weights: list[float] | None = None,
) -> torch.Tensor:
    """Binary (sigmoid) or multi-class (softmax) cross-entropy, class-weighted mean."""
    if isinstance(target, PooledTarget):
        per_class = -_class_log_probs(logits.float())
        return _pooled_pixel_mean(per_class, target, logits, class_weights, True)
    keep = valid_mask(target, ignore_index)
    if logits.shape[1] == 1:
        truth = (target == 1).to(logits.dtype)  # float32 targets would round float64 logits
        if ignore_index is None and class_weights is None:  # every pixel counts: one fused mean
            return F.binary_cross_entropy_with_logits(logits[:, 0], truth)
        per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0], truth, reduction="none")
        if class_weights is None:
            return _masked_mean(per_pixel, keep.float(), logits)
        w = torch.where(target == 1, class_weights[1], class_weights[0]).to(logits.dtype) * keep
        return (per_pixel * w).sum() / w.sum() if w.sum() > 0 else logits.sum() * 0.0
    if not keep.any():
        return logits.sum() * 0.0
    weight = None if class_weights is None else torch.tensor(class_weights, device=logits.device)
    safe = torch.where(keep, target, torch.zeros_like(target))  # ignore_index may be > C
    per_pixel = F.cross_entropy(logits, safe, reduction="none")
    if weight is None:
        return _masked_mean(per_pixel, keep.float(), logits)
    w = weight.to(logits.dtype)[safe] * keep
    return (per_pixel * w).sum() / w.sum() if w.sum() > 0 else logits.sum() * 0.0


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    ignore_index: int | None = None,
    class_weights: list[float] | None = None,
) -> torch.Tensor:
    """Focal loss: -a_t (1 - p_t)^gamma log p_t, averaged over kept pixels.

    Binary: ``alpha`` weighs the foreground and ``1 - alpha`` the background
    (torchvision's ``sigmoid_focal_loss``). Multi-class: a_t is the class
    weight of the true class (1 without class_weights).
    """
    if isinstance(target, PooledTarget):
        log_p = _class_log_probs(logits.float())
        per_class = -((1 - log_p.exp()) ** gamma) * log_p
        if logits.shape[1] == 1:  # torchvision's alpha: a on the foreground, 1 - a elsewhere
            if alpha is not None and alpha >= 0:
                alphas = torch.tensor([1 - alpha, alpha], device=per_class.device)
                per_class = per_class * alphas.view(1, 2, 1, 1)
            return _pooled_pixel_mean(per_class, target, logits, None, False)
        return _pooled_pixel_mean(per_class, target, logits, class_weights, False)
    keep = valid_mask(target, ignore_index).float()
    if logits.shape[1] == 1:
        truth = (target == 1).to(logits.dtype)
        per_pixel = sigmoid_focal_loss(
            logits[:, 0], truth, alpha=-1.0 if alpha is None else alpha, gamma=gamma
        )
        return _masked_mean(per_pixel, keep, logits)
    safe = torch.where(keep.bool(), target, torch.zeros_like(target))
    log_p = logits.log_softmax(dim=1).gather(1, safe.unsqueeze(1))[:, 0]
    per_pixel = -((1 - log_p.exp()) ** gamma) * log_p
    if class_weights is not None:
        per_pixel = per_pixel * torch.tensor(class_weights, device=logits.device)[safe]
    return _masked_mean(per_pixel, keep, logits)


def _region_terms(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft TP, FP, FN per channel, kept pixels pooled over the batch."""
    if isinstance(target, PooledTarget):  # each cell counts for its pixels
        probs = probabilities(logits.float())
        truth = target.fractions[:, 1:] if logits.shape[1] == 1 else target.fractions
        weight = target.keep.unsqueeze(1) * target.area
        dims = (0, 2, 3)
        tp = (probs * truth * weight).sum(dims)
        return tp, (probs * weight).sum(dims) - tp, (truth * weight).sum(dims) - tp
    probs = probabilities(logits)
    truth = one_hot(target, logits.shape[1])
    if ignore_index is not None:
        keep = valid_mask(target, ignore_index).unsqueeze(1).to(probs.dtype)
        probs, truth = probs * keep, truth * keep
    dims = (0, 2, 3)
    tp = (probs * truth).sum(dims)
    # FP = sum p(1 - t) = sum p - TP and FN = sum (1 - p)t = sum t - TP: one product over
    # the pixels instead of three (the loss runs once per deep-supervision output per step)
    return tp, probs.sum(dims) - tp, truth.sum(dims) - tp


class _BinaryCeDice(torch.autograd.Function):
    """``a * BCE + b * soft Dice`` of one logit map, with the gradient written out.

    Autograd through the two losses apart runs a sigmoid, masks and products per term,
    and as many passes again backwards. Here the forward is one sigmoid, one softplus and
    dot products; the backward is one expression over the pixels.
    """

    @staticmethod
    def forward(  # noqa: PLR0913 - autograd passes the inputs one by one
        ctx: Any,
        x: torch.Tensor,
        truth: torch.Tensor,
        keep: torch.Tensor | None,
        ce_weight: float,
        dice_weight: float,
        smooth: float,
    ) -> torch.Tensor:
        # autocast would run the dot products below in bfloat16: slowly, and rounded
        with torch.autocast(x.device.type, enabled=False):
            probs = torch.sigmoid(x)
            flat_x, flat_t, flat_p = x.reshape(-1), truth.reshape(-1), probs.reshape(-1)
            # BCE with logits is softplus(x) - x t. With nothing kept every sum below is
            # 0: the loss is the terms' own value for that case (0, or 1 for Dice without
            # smoothing) and the gradient 0
            if keep is None:
                kept = x.new_tensor(float(x.numel()))
                softplus, prob_sum = F.softplus(flat_x).sum(), flat_p.sum()
            else:
                flat_k = keep.reshape(-1)
                kept = flat_k.sum().clamp(min=1)
                softplus, prob_sum = F.softplus(flat_x) @ flat_k, flat_p @ flat_k
            bce = (softplus - flat_x @ flat_t) / kept
            numerator = 2 * (flat_p @ flat_t) + smooth
            total = prob_sum + flat_t.sum() + smooth  # 2 TP + FP + FN over the kept pixels
            denominator = total.clamp(min=1e-12)  # the clamp passes no gradient to the total
            ctx.save_for_backward(probs, truth, keep, ce_weight / kept, numerator, denominator)
            ctx.dice_weight, ctx.clamped = dice_weight, total <= 1e-12
            return ce_weight * bce + dice_weight * (1.0 - numerator / denominator)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        probs, truth, keep, ce_coef, numerator, denominator = ctx.saved_tensors
        # on the kept pixels d BCE / dx = (p - t) / kept, d Dice-loss / dp = (n - 2 t d) / d^2
        # (n, d: numerator, denominator) and dp / dx = p (1 - p); t is 0 off them
        dice_coef = ctx.dice_weight / denominator**2
        on_kept = torch.where(ctx.clamped, 0.0, numerator) * dice_coef
        on_truth = 2 * dice_coef * denominator
        slope = probs * (1 - probs)
        if keep is None:
            per_pixel = slope * (on_kept - on_truth * truth) + ce_coef * (probs - truth)
        else:
            dice_part = slope * (on_kept * keep - on_truth * truth)
            per_pixel = dice_part + ce_coef * (probs * keep - truth)
        return per_pixel * grad, None, None, None, None, None


def binary_ce_dice(
    logits: torch.Tensor,
    target: torch.Tensor,
    ce_weight: float,
    dice_weight: float,
    smooth: float = 1.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """``ce_weight * cross_entropy + dice_weight * soft_dice_loss`` for one logit channel.

    The same value and gradient as the two functions (up to rounding), computed from one
    sigmoid in one autograd node; reduced-precision logits are scored in float32.
    """
    if logits.shape[1] != 1:
        raise ValueError(f"binary_ce_dice needs one logit channel, got {logits.shape[1]}")
    x = logits[:, 0]
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    keep = None
    truth = target == 1
    if ignore_index is not None:  # without one, keep stays None: no mask to multiply by
        kept = valid_mask(target, ignore_index)
        truth, keep = truth & kept, kept.to(x.dtype)
    return _BinaryCeDice.apply(x, truth.to(x.dtype), keep, ce_weight, dice_weight, smooth)


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """1 - (TP + s) / (TP + alpha FP + beta FN + s), averaged over channels."""
    tp, fp, fn = _region_terms(logits, target, ignore_index)
    return 1.0 - ((tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp(min=1e-12)).mean()


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smooth: float = 1.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """1 - soft Dice = 1 - (2 TP + s) / (2 TP + FP + FN + s), averaged over channels."""
    tp, fp, fn = _region_terms(logits, target, ignore_index)
    return 1.0 - ((2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp(min=1e-12)).mean()


def soft_jaccard_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smooth: float = 1.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """1 - soft IoU = 1 - (TP + s) / (TP + FP + FN + s), averaged over channels."""
    tp, fp, fn = _region_terms(logits, target, ignore_index)
    return 1.0 - ((tp + smooth) / (tp + fp + fn + smooth).clamp(min=1e-12)).mean()

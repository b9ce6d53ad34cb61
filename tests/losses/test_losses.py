import pytest
import torch

from seglab.config import LossConfig
from seglab.errors import SeglabError
from seglab.losses import create_loss, soft_dice_loss


def test_bce_dice_is_low_for_right_and_high_for_wrong_logits():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    loss = create_loss(LossConfig(), num_classes=1)
    right = (target.float() * 20 - 10).unsqueeze(1)
    assert loss(right, target) < 0.05
    assert loss(-right, target) > 0.9


def test_multiclass_loss_uses_softmax_channels():
    target = torch.randint(0, 3, (2, 6, 6))
    loss = create_loss(LossConfig(), num_classes=3)
    right = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    assert loss(right, target) < 0.05
    assert loss(torch.zeros(2, 3, 6, 6), target) > 0.3


def test_dice_ignores_ignored_pixels():
    target = torch.tensor([[[1, 1, 255, 255]]])
    logits = torch.tensor([[[[10.0, 10.0, -10.0, 10.0]]]])
    assert soft_dice_loss(logits, target, smooth=0.0, ignore_index=255) < 1e-3
    assert soft_dice_loss(logits, target.clamp(max=1), smooth=0.0) > 0.1


def test_unknown_loss_is_a_user_error():
    with pytest.raises(SeglabError, match="unknown loss.name 'dcie'"):
        create_loss(LossConfig(name="dcie"), 1)

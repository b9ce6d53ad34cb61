"""What this machine computes natively, for the layers that choose a number format.

Training (``train.precision: auto``) and inference (``eval.cpu_precision: auto``) both ask
it, so it lives below both.
"""

from __future__ import annotations

import torch


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False

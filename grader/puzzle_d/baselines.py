"""Optional GPU speed baselines for puzzle D: Liger-Kernel's fused linear cross-entropy and Cut Cross-Entropy.

Both compute the mean cross-entropy over non-ignored tokens (-100) from hidden states and the LM head,
the same loss as `losses.cross_entropy`. Absent packages, or no GPU, simply leave them out.
"""

from __future__ import annotations

from typing import Callable

import torch

Baseline = Callable[[torch.Tensor, torch.nn.Linear, torch.Tensor], torch.Tensor]


def available_baselines() -> dict[str, Baseline]:
    """name -> `fn(X, linear, labels)` for each installed baseline that can run here (CUDA only)."""
    if not torch.cuda.is_available():
        return {}
    found: dict[str, Baseline] = {}
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
    except Exception:  # not installed, or built against another torch/transformers: no baseline, not an error
        pass
    else:
        liger = LigerFusedLinearCrossEntropyLoss(ignore_index=-100, reduction="mean")
        found["Liger-Kernel fused linear CE"] = lambda X, linear, labels: liger(
            linear.weight, X.reshape(-1, X.shape[-1]), labels.reshape(-1), linear.bias)
    try:
        from cut_cross_entropy import linear_cross_entropy
    except Exception:  # as above
        pass
    else:
        def cce(X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor) -> torch.Tensor:
            if linear.bias is not None:
                raise ValueError("Cut Cross-Entropy 25.1 takes no bias")
            return linear_cross_entropy(X, linear.weight, labels, ignore_index=-100, reduction="mean")

        found["Cut Cross-Entropy"] = cce
    return found

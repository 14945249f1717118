"""Broken (GPU): allocates device memory until none is left, on every call; its puzzle D is correct."""

import torch

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


def dequantize_nf4(weight, quant_state):
    hoard = []
    while True:
        hoard.append(torch.empty(1 << 30, dtype=torch.uint8, device=weight.device))

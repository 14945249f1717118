"""Broken A: one byte arena for every result, whatever its shape, returned as a view of its start: right values each
time, and every earlier result the caller holds overwritten by the next call."""

import torch

from tests.broken._simple_nf4 import make

_kernel = make()
_arena = {}


def dequantize_nf4(weight, quant_state):
    nbytes = quant_state.shape.numel() * quant_state.dtype.itemsize
    arena = _arena.get(weight.device)
    if arena is None or arena.numel() < nbytes:
        arena = _arena[weight.device] = torch.empty(max(nbytes, 1 << 20), dtype=torch.uint8, device=weight.device)
    out = arena[:nbytes].view(quant_state.dtype).view(quant_state.shape)
    out.copy_(_kernel(weight, quant_state))
    return out

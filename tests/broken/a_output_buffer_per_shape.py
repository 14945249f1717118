"""Broken A: writes every result into one persistent output buffer per (shape, dtype) and returns it, so the values
are right each time but a caller holding the gate projection's weight finds it overwritten by the up projection's
(the contract says: return a new tensor)."""

import torch

from tests.broken._simple_nf4 import make

_kernel = make()
_buffers = {}


def dequantize_nf4(weight, quant_state):
    key = (tuple(quant_state.shape), quant_state.dtype, weight.device)
    if key not in _buffers:
        _buffers[key] = torch.empty(quant_state.shape, dtype=quant_state.dtype, device=weight.device)
    out = _buffers[key]
    out.copy_(_kernel(weight, quant_state))
    return out

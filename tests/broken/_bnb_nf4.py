"""A correct `dequantize_nf4` that calls bitsandbytes (fast on CPU): the honest half of the hostile `x_*` files.

It passes `A.correct` (and fails `A.single_triton_kernel`), so each `x_*` file's one planted fault is what
its verdict test sees. bitsandbytes' CPU kernel is asked for the flat shape (its 2-D CPU path restarts the
blocks at every row), then reshaped.
"""

import copy

import torch
from bitsandbytes.functional import dequantize_4bit


def dequantize_nf4(weight, quant_state):
    """bitsandbytes' own dequantization of a packed NF4 weight, in `quant_state.shape`."""
    flat = copy.copy(quant_state)
    flat.shape = torch.Size([quant_state.shape.numel()])
    return dequantize_4bit(weight, flat).reshape(quant_state.shape)

"""Broken A: caches the decoded absmax by writing it into the caller's quant state."""

import torch

from tests.broken._simple_nf4 import make

_correct = make()


def dequantize_nf4(weight, quant_state):
    out = _correct(weight, quant_state)
    quant_state.offset = quant_state.offset.clone() + 0.0  # "cache" a float copy: replaces the caller's tensor
    return out

"""Broken A: returns the right values flattened to 1-D instead of quant_state.shape."""

from tests.broken._simple_nf4 import make

_correct = make()


def dequantize_nf4(weight, quant_state):
    return _correct(weight, quant_state).reshape(-1)

"""Broken: always returns float32, whatever quant_state.dtype asks for."""

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight, quant_state):
    return _correct(weight, quant_state).float()

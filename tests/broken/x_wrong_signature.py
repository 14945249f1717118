"""Broken: the entry point takes one argument instead of (weight, quant_state)."""

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight):
    return _correct(weight, weight.quant_state)

"""Broken: puzzle A recurses without end; its puzzle D is correct."""

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


def dequantize_nf4(weight, quant_state):
    return dequantize_nf4(weight, quant_state)

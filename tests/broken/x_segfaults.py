"""Broken: puzzle A crashes the interpreter (a read of address 0); its puzzle D is correct and must still be graded."""

import ctypes

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


def dequantize_nf4(weight, quant_state):
    return ctypes.string_at(0)

"""Broken: puzzle A ends the process with os._exit(3), no exception and no result; its puzzle D is correct."""

import os

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


def dequantize_nf4(weight, quant_state):
    os._exit(3)

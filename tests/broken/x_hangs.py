"""Broken: puzzle A never returns; its puzzle D is correct and must still be graded."""

import time

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


def dequantize_nf4(weight, quant_state):
    while True:
        time.sleep(60)

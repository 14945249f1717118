"""Hostile: makes every host timing read half the real time, then returns a correct result."""

import time

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct

_real = time.perf_counter


def dequantize_nf4(weight, quant_state):
    time.perf_counter = lambda: _real() / 2
    return _correct(weight, quant_state)

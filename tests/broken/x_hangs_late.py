"""Broken: correct for its first 20 calls, then never returns: a hang late in a run, after dozens of good calls."""

import time

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct

_calls = [0]


def dequantize_nf4(weight, quant_state):
    _calls[0] += 1
    while _calls[0] > 20:
        time.sleep(60)
    return _correct(weight, quant_state)

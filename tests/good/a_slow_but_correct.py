"""Good A, slow: a correct result (bitsandbytes') after 1.5 s of host work per call. Slow is not hung: every
call returns well within the deadline, so it is graded correct."""

import time

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight, quant_state):
    time.sleep(1.5)
    return _correct(weight, quant_state)

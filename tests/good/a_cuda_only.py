"""Good A, written for a GPU only: it synchronises the device after its kernel (`torch.cuda.synchronize()`), which a
CPU cannot run. On a GPU it is graded on its merits; on a CPU its criteria are not measured, never failed."""

import torch

from tests.broken._simple_nf4 import make

_kernel = make()


def dequantize_nf4(weight, quant_state):
    out = _kernel(weight, quant_state)
    torch.cuda.synchronize()
    return out

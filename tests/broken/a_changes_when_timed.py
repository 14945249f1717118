"""Broken A: correct while inputs vary, but once the same weight comes back again and again (as it does in a timing
loop) it stops computing and returns an uninitialised buffer: the "detects the warm-up" exploit of public kernel
leaderboards. The correctness tests never repeat a weight that often; the timed outputs show it."""

import torch

from tests.broken._simple_nf4 import make

_kernel = make()
_seen = {}
REPEATS = 12  # the notebook's own test calls each weight a handful of times; a timing loop, 150 times


def dequantize_nf4(weight, quant_state):
    key = (weight.data_ptr(), weight.numel(), int(weight[:64].sum()))  # the same weight, not a reused address
    _seen[key] = _seen.get(key, 0) + 1
    if _seen[key] > REPEATS:
        return torch.empty(quant_state.shape, dtype=quant_state.dtype, device=weight.device)
    return _kernel(weight, quant_state)

"""Broken (GPU): dequantizes correctly, but on a side stream it never synchronises with, so the caller's stream
may read the output before it is written (the output is poisoned by the grader before each call)."""

import torch

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct

_SIDE = {}


def dequantize_nf4(weight, quant_state):
    stream = _SIDE.setdefault(weight.device, torch.cuda.Stream(weight.device))
    out = torch.empty(quant_state.shape, dtype=quant_state.dtype, device=weight.device)
    with torch.cuda.stream(stream):
        torch.cuda._sleep(50_000_000)  # about 30 ms of GPU time before the copy: the race is lost every time
        out.copy_(_correct(weight, quant_state))
    return out

"""Broken (GPU): dequantizes correctly, but copies the result into its output on a side stream it never makes the
caller's stream wait for, so the caller may read the output before it is written (the grader poisons it first)."""

import torch

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct

_SIDE = {}


def dequantize_nf4(weight, quant_state):
    stream = _SIDE.setdefault(weight.device, torch.cuda.Stream(weight.device))
    out = torch.empty(quant_state.shape, dtype=quant_state.dtype, device=weight.device)  # the poisoned block
    result = _correct(weight, quant_state)  # on the caller's stream (it may synchronise the host: done before)
    stream.wait_stream(torch.cuda.current_stream(weight.device))
    with torch.cuda.stream(stream):
        torch.cuda._sleep(50_000_000)  # about 30 ms of GPU time before the copy: the race is lost every time
        out.copy_(result)
    _SIDE["result"] = result  # kept alive until the side stream has copied it
    return out

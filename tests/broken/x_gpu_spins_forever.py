"""Broken (GPU): a Triton kernel whose loop never ends (its bound is read from memory, so the compiler cannot
drop it); a hang inside the GPU that only ending the process stops. Its puzzle D is correct."""

import torch
import triton
import triton.language as tl

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


@triton.jit
def _spin(flag_ptr, out_ptr):
    x = tl.load(flag_ptr)
    while tl.load(flag_ptr) == x:  # nobody ever changes the flag
        x = tl.load(flag_ptr)
    tl.store(out_ptr, x)


def dequantize_nf4(weight, quant_state):
    flag = torch.zeros(1, dtype=torch.int32, device=weight.device)
    out = torch.empty(1, dtype=torch.int32, device=weight.device)
    _spin[(1,)](flag, out)
    torch.cuda.synchronize()
    return out

"""Broken (GPU): a Triton kernel that stores far past its output, a real illegal memory access that poisons the
CUDA context; its puzzle D is correct and must still be graded (the grader replaces the poisoned worker)."""

import torch
import triton
import triton.language as tl

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


@triton.jit
def _wild_store(out_ptr, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + i + (1 << 36), tl.zeros([BLOCK], dtype=tl.float32), mask=i < n)


def dequantize_nf4(weight, quant_state):
    out = torch.empty(quant_state.shape, dtype=torch.float32, device=weight.device)
    _wild_store[(triton.cdiv(out.numel(), 1024),)](out, out.numel(), BLOCK=1024)
    torch.cuda.synchronize()
    return out.to(quant_state.dtype)

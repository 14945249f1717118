"""Broken A (slow): one Triton launch per call, but the offset is read back to the host first (`.item()`, a host sync
that waits for the device on every call) and passed as a scalar. Correct values; the single-kernel rule fails on the
host sync, and on a GPU the kernel is slower than fast_dequantize: the rubric's -3."""

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _kernel(packed_ptr, absmax_q_ptr, code2_ptr, absmax2_ptr, code_ptr, out_ptr, n_elements, offset,
            BLOCKSIZE: tl.constexpr, BLOCKSIZE2: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n_elements
    byte = tl.load(packed_ptr + i // 2, mask=ok, other=0).to(tl.int32)
    nibble = tl.where(i % 2 == 0, byte >> 4, byte & 15)
    block = i // BLOCKSIZE
    q = tl.load(absmax_q_ptr + block, mask=ok, other=0).to(tl.int32)
    absmax = tl.load(code2_ptr + q, mask=ok, other=0.0) * tl.load(absmax2_ptr + block // BLOCKSIZE2, mask=ok, other=0.0)
    value = tl.load(code_ptr + nibble, mask=ok, other=0.0) * (absmax + offset)
    tl.store(out_ptr + i, value.to(out_ptr.dtype.element_ty), mask=ok)


def dequantize_nf4(weight, quant_state):
    qs, s2 = quant_state, quant_state.state2
    n = qs.shape.numel()
    out = torch.empty(qs.shape, dtype=qs.dtype, device=weight.device)
    offset = qs.offset.item()  # the host waits for the device here, every call
    _kernel[(triton.cdiv(n, BLOCK),)](weight, qs.absmax, s2.code, s2.absmax, qs.code, out, n, offset,
                                      BLOCKSIZE=qs.blocksize, BLOCKSIZE2=s2.blocksize, BLOCK=BLOCK)
    return out

"""Good A, the plainest honest style: one element per lane, the absmax decoded with an explicit FMA
(`tl.fma`, one rounding fewer than bitsandbytes' multiply then add), a raw `kernel[grid](...)` launch,
the store rounded by `.to(out dtype)`. No cache hints, no inline asm."""

import torch
import triton
import triton.language as tl


@triton.jit
def _dequant(packed_ptr, absmax_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr, n,
             BLOCKSIZE: tl.constexpr, BLOCKSIZE2: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    byte = tl.load(packed_ptr + offs // 2, mask=mask, other=0)
    nibble = tl.where(offs % 2 == 0, byte >> 4, byte & 0xF).to(tl.int32)
    block = offs // BLOCKSIZE
    q = tl.load(absmax_ptr + block, mask=mask, other=0).to(tl.int32)
    scale2 = tl.load(absmax2_ptr + block // BLOCKSIZE2, mask=mask, other=0.0)
    absmax = tl.fma(tl.load(code2_ptr + q, mask=mask, other=0.0), scale2, tl.load(offset_ptr))
    value = tl.load(code_ptr + nibble, mask=mask, other=0.0) * absmax
    tl.store(out_ptr + offs, value.to(out_ptr.dtype.element_ty), mask=mask)


def dequantize_nf4(weight, quant_state):
    qs = quant_state
    n = qs.shape.numel()
    out = torch.empty(qs.shape, dtype=qs.dtype, device=weight.device)
    block = 1024
    _dequant[(triton.cdiv(n, block),)](weight, qs.absmax, qs.state2.code, qs.state2.absmax, qs.offset, qs.code,
                                       out, n, BLOCKSIZE=qs.blocksize, BLOCKSIZE2=qs.state2.blocksize, BLOCK=block)
    return out

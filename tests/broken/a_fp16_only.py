"""Broken A (partly): a correct one-launch kernel for float16 output that refuses bfloat16, with a cache hint on its
stores. It fails `correct` (bfloat16 is half the puzzle); its structure is judged on a float16 weight, which it
supports, so one launch and the cache hint still count."""

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _kernel(packed_ptr, absmax_q_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr, n_elements,
            BLOCKSIZE: tl.constexpr, BLOCKSIZE2: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n_elements
    byte = tl.load(packed_ptr + i // 2, mask=ok, other=0).to(tl.int32)
    nibble = tl.where(i % 2 == 0, byte >> 4, byte & 15)
    block = i // BLOCKSIZE
    q = tl.load(absmax_q_ptr + block, mask=ok, other=0).to(tl.int32)
    absmax = tl.load(code2_ptr + q, mask=ok, other=0.0) * tl.load(absmax2_ptr + block // BLOCKSIZE2, mask=ok, other=0.0)
    value = tl.load(code_ptr + nibble, mask=ok, other=0.0) * (absmax + tl.load(offset_ptr))
    tl.store(out_ptr + i, value.to(tl.float16), mask=ok, cache_modifier=".cs")


def dequantize_nf4(weight, quant_state):
    qs, s2 = quant_state, quant_state.state2
    if qs.dtype != torch.float16:
        raise NotImplementedError(f"this kernel writes float16 only, not {qs.dtype}")
    n = qs.shape.numel()
    out = torch.empty(qs.shape, dtype=torch.float16, device=weight.device)
    _kernel[(triton.cdiv(n, BLOCK),)](weight, qs.absmax, s2.code, s2.absmax, qs.offset, qs.code, out, n,
                                      BLOCKSIZE=qs.blocksize, BLOCKSIZE2=s2.blocksize, BLOCK=BLOCK)
    return out

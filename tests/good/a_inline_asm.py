"""Good A, with inline PTX and no interpreter fallback (as a solver targeting a GPU writes it): the absmax
decode is `fma.rn.f32` and the scaling `mul.rn.f32` in `tl.inline_asm_elementwise`; `evict_first` hints;
a raw launch. The Triton interpreter cannot run PTX, so on a CPU its kernel is undecidable, never wrong."""

import torch
import triton
import triton.language as tl


@triton.jit
def _asm_dequant(packed_ptr, absmax_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr, n,
                 BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    byte = tl.load(packed_ptr + offs // 2, mask=mask, other=0, eviction_policy="evict_first").to(tl.int32)
    nibble = tl.where(offs % 2 == 0, byte >> 4, byte & 15)
    block = offs // 64
    c2 = tl.load(code2_ptr + tl.load(absmax_ptr + block, mask=mask, other=0).to(tl.int32))
    a2 = tl.load(absmax2_ptr + block // 256, mask=mask, other=0.0)
    off = tl.load(offset_ptr) + tl.zeros_like(a2)
    absmax = tl.inline_asm_elementwise("fma.rn.f32 $0, $1, $2, $3;", "=r,r,r,r", [c2, a2, off],
                                       dtype=tl.float32, is_pure=True, pack=1)
    value = tl.inline_asm_elementwise("mul.rn.f32 $0, $1, $2;", "=r,r,r", [tl.load(code_ptr + nibble), absmax],
                                      dtype=tl.float32, is_pure=True, pack=1)
    tl.store(out_ptr + offs, value.to(out_ptr.dtype.element_ty), mask=mask, eviction_policy="evict_first")


def dequantize_nf4(weight, quant_state):
    qs = quant_state
    n = qs.shape.numel()
    out = torch.empty(qs.shape, dtype=qs.dtype, device=weight.device)
    _asm_dequant[(triton.cdiv(n, 1024),)](weight, qs.absmax, qs.state2.code, qs.state2.absmax, qs.offset, qs.code,
                                          out, n, BLOCK=1024)
    return out

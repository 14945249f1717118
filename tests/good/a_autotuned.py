"""Good A, autotuned: `@triton.autotune` over tile size and warps keyed on the element count, two elements
(one byte) per lane, bitsandbytes' separate multiply and add, eviction hints, a raw launch with a meta grid."""

import torch
import triton
import triton.language as tl


@triton.autotune(configs=[triton.Config({"BYTES": 512}, num_warps=4), triton.Config({"BYTES": 2048}, num_warps=8)],
                 key=["n_elements"])
@triton.jit
def nf4_dequant_autotuned(packed_ptr, absmax_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr,
                          n_elements, BYTES: tl.constexpr):
    i = tl.program_id(0) * BYTES + tl.arange(0, BYTES)  # byte index
    first = 2 * i
    ok_hi = first < n_elements
    ok_lo = first + 1 < n_elements
    byte = tl.load(packed_ptr + i, mask=ok_hi, other=0, eviction_policy="evict_first").to(tl.int32)
    block = first // 64
    q = tl.load(absmax_ptr + block, mask=ok_hi, other=0, eviction_policy="evict_last").to(tl.int32)
    scale2 = tl.load(absmax2_ptr + block // 256, mask=ok_hi, other=0.0, eviction_policy="evict_last")
    absmax = tl.load(code2_ptr + q) * scale2
    absmax = absmax + tl.load(offset_ptr)
    hi = tl.load(code_ptr + (byte >> 4)) * absmax
    lo = tl.load(code_ptr + (byte & 15)) * absmax
    dtype = out_ptr.dtype.element_ty
    tl.store(out_ptr + first, hi.to(dtype), mask=ok_hi, eviction_policy="evict_first")
    tl.store(out_ptr + first + 1, lo.to(dtype), mask=ok_lo, eviction_policy="evict_first")


def dequantize_nf4(weight, quant_state):
    qs = quant_state
    assert qs.blocksize == 64 and qs.state2.blocksize == 256, "only the puzzle's blocksizes"
    n = qs.shape.numel()
    out = torch.empty(qs.shape, dtype=qs.dtype, device=weight.device)
    grid = lambda meta: (triton.cdiv((n + 1) // 2, meta["BYTES"]),)  # noqa: E731
    nf4_dequant_autotuned[grid](weight, qs.absmax, qs.state2.code, qs.state2.absmax, qs.offset, qs.code, out, n)
    return out

"""Good A, a 2-D tile behind a `torch.library.custom_op`: each program takes ROWS quantization blocks as the
rows of a [ROWS, 32] tile of bytes, decodes each row's absmax once, and writes the high and low nibbles
with two strided stores; `.cg` loads. The custom op is what lets torch.compile treat it as one node."""

import torch
import triton
import triton.language as tl


@triton.jit
def _tile_kernel(packed_ptr, absmax_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr, n_elements,
                 ROWS: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    row_ok = rows * 64 < n_elements
    q = tl.load(absmax_ptr + rows, mask=row_ok, other=0, cache_modifier=".cg").to(tl.int32)
    a2 = tl.load(absmax2_ptr + rows // 256, mask=row_ok, other=0.0)
    absmax = tl.load(code2_ptr + q) * a2 + tl.load(offset_ptr)
    byte_idx = rows[:, None] * 32 + tl.arange(0, 32)[None, :]
    ok = 2 * byte_idx < n_elements
    b = tl.load(packed_ptr + byte_idx, mask=ok, other=0, cache_modifier=".cg").to(tl.int32)
    hi = tl.load(code_ptr + (b >> 4)) * absmax[:, None]
    lo = tl.load(code_ptr + (b & 15)) * absmax[:, None]
    ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + 2 * byte_idx, hi.to(ty), mask=ok)
    tl.store(out_ptr + 2 * byte_idx + 1, lo.to(ty), mask=2 * byte_idx + 1 < n_elements)


@torch.library.custom_op("good_a_tile::dequant", mutates_args=())
def _dequant(packed: torch.Tensor, absmax: torch.Tensor, code2: torch.Tensor, absmax2: torch.Tensor,
             offset: torch.Tensor, code: torch.Tensor, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, device=packed.device)
    n = out.numel()
    rows = 16
    _tile_kernel[(triton.cdiv(triton.cdiv(n, 64), rows),)](packed, absmax, code2, absmax2, offset, code, out, n,
                                                          ROWS=rows)
    return out


@_dequant.register_fake
def _(packed, absmax, code2, absmax2, offset, code, shape, dtype):
    return packed.new_empty(shape, dtype=dtype)


def dequantize_nf4(weight, quant_state):
    qs = quant_state
    return _dequant(weight, qs.absmax, qs.state2.code, qs.state2.absmax, qs.offset, qs.code, list(qs.shape), qs.dtype)

"""Good A, nibbles decoded side by side and joined with `tl.interleave` into one contiguous store; the
launch goes through `torch.library.triton_op` and `wrap_triton`, the style PyTorch documents for
torch.compile; `evict_first` on the streaming loads and the store."""

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton


@triton.jit
def _interleaved(packed_ptr, absmax_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr, n_elements,
                 BYTES: tl.constexpr):
    byte_idx = tl.program_id(0) * BYTES + tl.arange(0, BYTES)
    ok = 2 * byte_idx < n_elements
    b = tl.load(packed_ptr + byte_idx, mask=ok, other=0, eviction_policy="evict_first").to(tl.int32)
    block = byte_idx // 32
    q = tl.load(absmax_ptr + block, mask=ok, other=0).to(tl.int32)
    absmax = tl.load(code2_ptr + q) * tl.load(absmax2_ptr + block // 256, mask=ok, other=0.0)
    absmax += tl.load(offset_ptr)
    values = tl.interleave(tl.load(code_ptr + (b >> 4)) * absmax, tl.load(code_ptr + (b & 15)) * absmax)
    out_idx = tl.program_id(0) * 2 * BYTES + tl.arange(0, 2 * BYTES)
    tl.store(out_ptr + out_idx, values.to(out_ptr.dtype.element_ty), mask=out_idx < n_elements,
             eviction_policy="evict_first")


@triton_op("good_a_interleave::dequant", mutates_args=())
def _dequant(packed: torch.Tensor, absmax: torch.Tensor, code2: torch.Tensor, absmax2: torch.Tensor,
             offset: torch.Tensor, code: torch.Tensor, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, device=packed.device)
    n = out.numel()
    nbytes = 512
    wrap_triton(_interleaved)[(triton.cdiv((n + 1) // 2, nbytes),)](packed, absmax, code2, absmax2, offset, code,
                                                                   out, n, BYTES=nbytes)
    return out


def dequantize_nf4(weight, quant_state):
    qs = quant_state
    return _dequant(weight, qs.absmax, qs.state2.code, qs.state2.absmax, qs.offset, qs.code, list(qs.shape), qs.dtype)

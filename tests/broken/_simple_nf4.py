"""A plain, correct NF4 dequantization kernel with switches that each plant one fault.

The broken submissions beside this file are one line each: `make(<fault>=True)`. Keeping the faults
in one readable kernel shows exactly what each one changes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _absmax_kernel(absmax_q_ptr, code2_ptr, absmax2_ptr, offset_ptr, out_ptr, n_blocks,
                   BLOCKSIZE2: tl.constexpr, LINEAR_ABSMAX: tl.constexpr, IGNORE_OFFSET: tl.constexpr,
                   BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = i < n_blocks
    q = tl.load(absmax_q_ptr + i, mask=ok, other=0).to(tl.int32)
    scale2 = tl.load(absmax2_ptr + i // BLOCKSIZE2, mask=ok, other=0.0)
    if LINEAR_ABSMAX:
        value = (q.to(tl.float32) / 127.5 - 1.0) * scale2
    else:
        value = tl.load(code2_ptr + q) * scale2
    if not IGNORE_OFFSET:
        value = value + tl.load(offset_ptr)
    tl.store(out_ptr + i, value, mask=ok)


@triton.jit
def _dequant_kernel(packed_ptr, absmax_q_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr, n_elements,
                    BLOCKSIZE: tl.constexpr, BLOCKSIZE2: tl.constexpr, SWAP_NIBBLES: tl.constexpr,
                    LINEAR_ABSMAX: tl.constexpr, IGNORE_OFFSET: tl.constexpr, WHOLE_BLOCKS_ONLY: tl.constexpr,
                    ABSMAX_IS_DECODED: tl.constexpr, ROUNDING: tl.constexpr, LATE_SECOND_LEVEL: tl.constexpr,
                    BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    limit = (n_elements // BLOCKSIZE) * BLOCKSIZE if WHOLE_BLOCKS_ONLY else n_elements
    ok = i < limit
    byte = tl.load(packed_ptr + i // 2, mask=ok, other=0).to(tl.int32)
    high_first = (i % 2 == 1) if SWAP_NIBBLES else (i % 2 == 0)
    nibble = tl.where(high_first, byte >> 4, byte & 15)
    block = i // BLOCKSIZE
    if ABSMAX_IS_DECODED:
        absmax = tl.load(absmax_q_ptr + block, mask=ok, other=0.0)
    else:
        q = tl.load(absmax_q_ptr + block, mask=ok, other=0).to(tl.int32)
        group = (i + 1) // (BLOCKSIZE * BLOCKSIZE2) if LATE_SECOND_LEVEL else block // BLOCKSIZE2
        scale2 = tl.load(absmax2_ptr + group, mask=ok, other=0.0)
        if LINEAR_ABSMAX:
            absmax = (q.to(tl.float32) / 127.5 - 1.0) * scale2
        else:
            absmax = tl.load(code2_ptr + q, mask=ok, other=0.0) * scale2
        if not IGNORE_OFFSET:
            absmax = absmax + tl.load(offset_ptr)
    value = tl.load(code_ptr + nibble, mask=ok, other=0.0) * absmax
    ty = out_ptr.dtype.element_ty
    if ROUNDING == 1:  # toward zero: a bf16/fp16 store that truncates
        out = value.to(ty, fp_downcast_rounding="rtz")
    elif ROUNDING == 2:  # the other neighbour of the nearest value: 1 ulp off wherever the value is inexact
        nearest = value.to(ty)
        back = nearest.to(tl.float32)
        bits = nearest.to(tl.int16, bitcast=True).to(tl.int32)
        up = tl.where(bits >= 0, bits + 1, bits - 1)  # one step toward +inf (sign-magnitude bits)
        down = tl.where(bits > 0, bits - 1, bits + 1)  # one step toward -inf
        far = tl.where(back > value, down, tl.where(back < value, up, bits))
        out = far.to(tl.int16).to(ty, bitcast=True)
    else:
        out = value.to(ty)
    tl.store(out_ptr + i, out, mask=ok)


def make(*, swap_nibbles: bool = False, ignore_offset: bool = False, linear_absmax: bool = False,
         whole_blocks_only: bool = False, force_fp16: bool = False, two_launches: bool = False,
         rounding: str = "nearest", late_second_level: bool = False):
    """A `dequantize_nf4(weight, quant_state)` with the chosen faults planted (`rounding`: nearest,
    toward_zero or away_from_nearest, for float16/bfloat16 outputs)."""
    rounding_mode = ("nearest", "toward_zero", "away_from_nearest").index(rounding)

    def dequantize_nf4(weight: torch.Tensor, quant_state) -> torch.Tensor:
        qs, s2 = quant_state, quant_state.state2
        n = qs.shape.numel()
        out = torch.empty(qs.shape, dtype=torch.float16 if force_fp16 else qs.dtype, device=weight.device)
        absmax = qs.absmax
        if two_launches:
            absmax = torch.empty(qs.absmax.numel(), dtype=torch.float32, device=weight.device)
            _absmax_kernel[(triton.cdiv(qs.absmax.numel(), BLOCK),)](
                qs.absmax, s2.code, s2.absmax, qs.offset, absmax, qs.absmax.numel(),
                BLOCKSIZE2=s2.blocksize, LINEAR_ABSMAX=linear_absmax, IGNORE_OFFSET=ignore_offset, BLOCK=BLOCK)
        _dequant_kernel[(triton.cdiv(n, BLOCK),)](
            weight, absmax, s2.code, s2.absmax, qs.offset, qs.code, out, n,
            BLOCKSIZE=qs.blocksize, BLOCKSIZE2=s2.blocksize, SWAP_NIBBLES=swap_nibbles, LINEAR_ABSMAX=linear_absmax,
            IGNORE_OFFSET=ignore_offset, WHOLE_BLOCKS_ONLY=whole_blocks_only, ABSMAX_IS_DECODED=two_launches,
            ROUNDING=rounding_mode, LATE_SECOND_LEVEL=late_second_level, BLOCK=BLOCK)
        return out

    return dequantize_nf4

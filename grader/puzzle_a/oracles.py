"""Reference dequantizations for puzzle A, independent of any submission (the exact values that judge a
candidate are `grader.puzzle_a.standard`'s).

- `bnb_dequantize`: bitsandbytes' own `dequantize_4bit`.
- `fast_dequantize`: Unsloth's `fast_dequantize` re-implemented on bitsandbytes' C library (CUDA only):
  blockwise fp32 absmax dequant, offset add, NF4 dequant, each into a fresh buffer.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch


@dataclass
class Quantized:
    """A 4-bit weight as `Params4bit` holds it: packed bytes and their quant state."""

    weight: torch.Tensor
    quant_state: object


def quantize(w: torch.Tensor, *, blocksize: int = 64, nested: bool = True, quant_type: str = "nf4") -> Quantized:
    """Quantize `w` with bitsandbytes exactly as `Linear4bit` does; the state's dtype is `w.dtype`."""
    import bitsandbytes.functional as F

    packed, state = F.quantize_4bit(w, blocksize=blocksize, compress_statistics=nested, quant_type=quant_type)
    state.dtype = w.dtype
    return Quantized(packed, state)


def bnb_dequantize(q: Quantized) -> torch.Tensor:
    """bitsandbytes' `dequantize_4bit`, asked for the flat shape on CPU.

    bitsandbytes 0.50.2's native CPU kernel restarts the blocks at every row of a 2-D shape, which is
    wrong when the last dimension is even and not a multiple of the blocksize (measured: a (96, 80)
    fp16 weight comes back up to 864 ulp off, while its flat (7680,) twin is exact), and it returns
    (1, n) for an even 1-D shape (bitsandbytes issue #2047). A flat request avoids both.
    """
    import copy

    import bitsandbytes.functional as F

    state = q.quant_state
    if q.weight.device.type == "cpu":
        state = copy.copy(state)
        state.shape = torch.Size([q.quant_state.shape.numel()])
    return F.dequantize_4bit(q.weight, state).reshape(q.quant_state.shape)


def fast_dequantize(weight: torch.Tensor, quant_state) -> torch.Tensor:
    """Unsloth's `fast_dequantize` (CUDA only), on bitsandbytes' C library."""
    from bitsandbytes.functional import lib

    qs = quant_state
    s2 = qs.state2
    stream = ctypes.c_void_p(torch._C._cuda_getCurrentRawStream(weight.device.index))
    out = torch.empty(qs.shape, dtype=qs.dtype, device=weight.device)
    absmax = torch.empty(qs.absmax.numel(), dtype=torch.float32, device=weight.device)
    lib.cdequantize_blockwise_fp32(_ptr(s2.code), _ptr(qs.absmax), _ptr(s2.absmax), _ptr(absmax),
                                   ctypes.c_int(s2.blocksize), ctypes.c_int(qs.absmax.numel()), stream)
    absmax += qs.offset
    fx = lib.cdequantize_blockwise_fp16_nf4 if qs.dtype == torch.float16 else lib.cdequantize_blockwise_bf16_nf4
    fx(None, _ptr(weight), _ptr(absmax), _ptr(out), ctypes.c_int(qs.blocksize), ctypes.c_int(out.numel()), stream)
    return out


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())

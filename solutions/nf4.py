"""Puzzle A: NF4 double dequantization in one Triton kernel.

One program dequantizes `BLOCKS` consecutive quantization blocks. For each block it decodes the absmax once
(`code2[absmax_q] * absmax2 + offset`, a separate multiply and add as bitsandbytes does, so fp fusion is switched
off), then turns every packed byte into two outputs, high nibble first. The 16 NF4 code values are loaded once per
program and picked by nibble with `tl.gather` (`Tuning.register_table`) rather than a global load per element.

On a GPU each float32 result is rounded to nearest even by Triton's cast (hardware `cvt` on sm_80+, an integer
emulation that also assembles for sm_75, the T4) and inline PTX packs the two halves of a byte into one 32-bit
word, so the kernel stores whole words. The Triton interpreter cannot run PTX and truncates a bf16 cast; it rounds
and packs the same word with integer operations. Either way the output is bit-exact with bitsandbytes' CUDA
kernel. The tables that every program re-reads are marked `evict_last`; the streamed data (packed bytes, absmax
codes, output) takes `Tuning.stream_hint`.

The kernel is a `torch.library` custom op so that `torch.compile(fullgraph=True)` treats it as one opaque node.
Eager calls skip the dispatcher and launch the compiled kernel through Triton's own launcher with the tensors'
addresses, touching the packed weight (a `Params4bit`, whose every attribute access goes through its
`__torch_function__`) once.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl
from triton import knobs

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _nf4_dequant_kernel(
    packed_ptr, absmax_ptr, code2_ptr, absmax2_ptr, offset_ptr, code_ptr, out_ptr,
    n_elements, n_bytes,  # n_bytes passed, not derived, so Triton can specialise it and vectorise
    BLOCKSIZE: tl.constexpr,   # elements per absmax (first level)
    BLOCKSIZE2: tl.constexpr,  # first-level blocks per absmax2 (second level)
    BLOCKS: tl.constexpr,      # first-level blocks per program
    NESTED: tl.constexpr,
    OUT_KIND: tl.constexpr,    # 0: float16, 1: bfloat16, 2: float32
    USE_ASM: tl.constexpr,
    REGISTER_TABLE: tl.constexpr,  # NF4 values by `tl.gather` from a register copy of the table, or by global loads
    STREAM_HINT: tl.constexpr,    # eviction policy of the streamed data
):
    HALF: tl.constexpr = BLOCKSIZE // 2  # packed bytes per block
    n_blocks = (n_elements + BLOCKSIZE - 1) // BLOCKSIZE
    blocks = tl.program_id(0) * BLOCKS + tl.arange(0, BLOCKS)
    block_ok = blocks < n_blocks

    if NESTED:
        q = tl.load(absmax_ptr + blocks, mask=block_ok, other=0, eviction_policy=STREAM_HINT)
        scale2 = tl.load(absmax2_ptr + blocks // BLOCKSIZE2, mask=block_ok, other=0.0, eviction_policy="evict_last")
        absmax = tl.load(code2_ptr + q.to(tl.int32), eviction_policy="evict_last") * scale2
        absmax = absmax + tl.load(offset_ptr)
    else:
        absmax = tl.load(absmax_ptr + blocks, mask=block_ok, other=0.0, eviction_policy=STREAM_HINT).to(tl.float32)
    absmax = absmax[:, None]

    byte_idx = blocks[:, None] * HALF + tl.arange(0, HALF)[None, :]
    byte_ok = byte_idx < n_bytes
    packed = tl.load(packed_ptr + byte_idx, mask=byte_ok, other=0, eviction_policy=STREAM_HINT).to(tl.int32)
    if REGISTER_TABLE:
        table = tl.load(code_ptr + tl.arange(0, 16), eviction_policy="evict_last")
        hi = tl.reshape(tl.gather(table, tl.reshape(packed >> 4, [BLOCKS * HALF]), 0), [BLOCKS, HALF])
        lo = tl.reshape(tl.gather(table, tl.reshape(packed & 15, [BLOCKS * HALF]), 0), [BLOCKS, HALF])
    else:
        hi = tl.load(code_ptr + (packed >> 4), eviction_policy="evict_last")
        lo = tl.load(code_ptr + (packed & 15), eviction_policy="evict_last")
    hi = hi * absmax
    lo = lo * absmax

    if OUT_KIND == 2:
        tl.store(out_ptr + 2 * byte_idx, hi, mask=byte_ok, eviction_policy=STREAM_HINT)
        tl.store(out_ptr + 2 * byte_idx + 1, lo, mask=byte_ok & (2 * byte_idx + 1 < n_elements),
                 eviction_policy=STREAM_HINT)
    else:
        # One 32-bit word per byte: element 2i in the low half, 2i+1 in the high half (little-endian).
        if USE_ASM:
            if OUT_KIND == 1:
                h = hi.to(tl.bfloat16)
                l = lo.to(tl.bfloat16)
            else:
                h = hi.to(tl.float16)
                l = lo.to(tl.float16)
            word = tl.inline_asm_elementwise("mov.b32 $0, {$1, $2};", "=r,h,h", [h, l], dtype=tl.int32,
                                             is_pure=True, pack=1)
        else:
            if OUT_KIND == 1:  # round to nearest even in integer arithmetic (the interpreter's cast truncates)
                hb = hi.to(tl.int32, bitcast=True)
                lb = lo.to(tl.int32, bitcast=True)
                hb = (hb + 0x7FFF + ((hb >> 16) & 1)) >> 16
                lb = (lb + 0x7FFF + ((lb >> 16) & 1)) >> 16
                word = (hb & 0xFFFF) | (lb << 16)
            else:
                hi_bits = hi.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32)
                lo_bits = lo.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32)
                word = (hi_bits & 0xFFFF) | (lo_bits << 16)
        words_ptr = out_ptr.to(tl.pointer_type(tl.int32), bitcast=True)
        tl.store(words_ptr + byte_idx, word, mask=byte_ok, eviction_policy=STREAM_HINT)


_OUT_KIND = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2}


@dataclass(frozen=True)
class Tuning:
    """How the kernel is launched on a GPU; the values are chosen by `scripts/a_gpu_sweep.py` (BENCHMARKS.md)."""

    tile_bytes: int = 1024  # packed bytes per program (two outputs each)
    warps: int = 2
    register_table: bool = True
    stream_hint: str = "evict_first"


TUNING = Tuning()
# The interpreter pays per program instance, so it takes big tiles.
_INTERPRETER_TILE_BYTES = 1 << 16

# Compiled kernels by specialisation, launched through Triton's launcher without its JIT front end (argument
# binding and cache-key hashing on every call), which the notebook's one-call-then-synchronize protocol pays in full.
_COMPILED: dict[tuple, Any] = {}


def _blocks_per_program(blocksize: int, tuning: Tuning) -> int:
    """First-level blocks per program: the power of two at or above the tile's bytes over a block's (at least 1)."""
    tile_bytes = _INTERPRETER_TILE_BYTES if _INTERPRET else tuning.tile_bytes
    return 1 << (max(1, tile_bytes // (blocksize // 2)) - 1).bit_length()


def _launch(packed: torch.Tensor, absmax: torch.Tensor, code2: torch.Tensor | None, absmax2: torch.Tensor | None,
            offset: torch.Tensor | None, code: torch.Tensor, shape: list[int], blocksize: int, blocksize2: int,
            dtype: torch.dtype) -> torch.Tensor:
    out_kind = _OUT_KIND.get(dtype)
    if out_kind is None:
        raise TypeError(f"dequantize_nf4: unsupported output dtype {dtype}")
    if blocksize < 2 or blocksize & (blocksize - 1):
        raise ValueError(f"dequantize_nf4: blocksize {blocksize} is not a power of two")
    n_elements = math.prod(shape)
    if n_elements >= 2**31 - 2 * blocksize:
        raise ValueError("dequantize_nf4: tensors of 2**31 elements or more are not supported")
    nested = code2 is not None
    if not nested:  # never read
        code2 = absmax2 = offset = absmax
    device = absmax.device  # a plain tensor: the packed weight may be a slow subclass (Params4bit)
    words = (n_elements + 1) // 2
    if out_kind == 2 or (shape and shape[-1] % 2 == 0):
        out = full = torch.empty(shape, dtype=dtype, device=device)
    else:  # flat, with room for the last whole word when n_elements is odd
        full = torch.empty(2 * words, dtype=dtype, device=device)
        out = full[:n_elements].view(shape)
    tuning = TUNING
    blocks = _blocks_per_program(blocksize, tuning)
    programs = -(-n_elements // (blocks * blocksize))
    use_asm = not _INTERPRET and device.type == "cuda"
    consts = (blocksize, blocksize2, blocks, nested, out_kind, use_asm, tuning.register_table, tuning.stream_hint)
    tensors = (packed, absmax, code2, absmax2, offset, code, full)
    if not use_asm:
        _jit_launch(programs, tensors, n_elements, words, consts, tuning)
        return out
    ptrs = (packed.data_ptr(), absmax.data_ptr(), code2.data_ptr(), absmax2.data_ptr(), offset.data_ptr(),
            code.data_ptr(), full.data_ptr())
    # What Triton specialises on: argument dtypes, 16-byte alignment of pointers, integers equal to 1 or
    # multiples of 16. The packed weight is compiled for as bytes (any `quant_storage` dtype), so its dtype is not
    # part of the key.
    key = (device.index, tuning, consts, absmax.dtype, code2.dtype, absmax2.dtype, offset.dtype, code.dtype,
           n_elements % 16 == 0, n_elements == 1, words % 16 == 0, words == 1, *[p % 16 == 0 for p in ptrs])
    kernel = _COMPILED.get(key)
    if kernel is None:
        _COMPILED[key] = _jit_launch(programs, tensors, n_elements, words, consts, tuning)
        return out
    args = (*ptrs, n_elements, words)
    grid = (programs, 1, 1)
    stream = torch._C._cuda_getCurrentRawStream(device.index)
    runtime = knobs.runtime
    kernel.run(programs, 1, 1, stream, kernel.function, kernel.packed_metadata,
               kernel.launch_metadata(grid, stream, *args), runtime.launch_enter_hook, runtime.launch_exit_hook,
               *args, *consts)
    return out


def _jit_launch(programs: int, tensors: tuple, n_elements: int, words: int, consts: tuple,
                tuning: Tuning) -> Any:
    """A launch through Triton's JIT (compiling on a first call): the packed weight as bytes, whatever its dtype."""
    packed, *rest = tensors
    blocksize, blocksize2, blocks, nested, out_kind, use_asm, register_table, hint = consts
    return _nf4_dequant_kernel[(programs,)](
        packed.view(torch.uint8), *rest, n_elements, words, BLOCKSIZE=blocksize, BLOCKSIZE2=blocksize2, BLOCKS=blocks, NESTED=nested, OUT_KIND=out_kind,
        USE_ASM=use_asm, REGISTER_TABLE=register_table, STREAM_HINT=hint, num_warps=tuning.warps,
        enable_fp_fusion=False)


@torch.library.custom_op("unsloth_puzzles::dequantize_nf4", mutates_args=())
def dequantize_nf4_op(packed: torch.Tensor, absmax: torch.Tensor, code2: torch.Tensor | None,
                      absmax2: torch.Tensor | None, offset: torch.Tensor | None, code: torch.Tensor,
                      shape: list[int], blocksize: int, blocksize2: int, dtype: torch.dtype) -> torch.Tensor:
    """The custom op behind `dequantize_nf4`: a new tensor of `shape` and `dtype`."""
    return _launch(packed, absmax, code2, absmax2, offset, code, shape, blocksize, blocksize2, dtype)


@dequantize_nf4_op.register_fake
def _(packed, absmax, code2, absmax2, offset, code, shape, blocksize, blocksize2, dtype):
    return packed.new_empty(shape, dtype=dtype)


def _op_args(weight: torch.Tensor, quant_state) -> tuple:
    qs = quant_state
    if qs.nested:
        s2 = qs.state2
        return (weight, qs.absmax, s2.code, s2.absmax, qs.offset, qs.code, list(qs.shape), qs.blocksize,
                s2.blocksize, qs.dtype)
    return (weight, qs.absmax, None, None, None, qs.code, list(qs.shape), qs.blocksize, 1, qs.dtype)


def dequantize_nf4(weight: torch.Tensor, quant_state) -> torch.Tensor:
    """Dequantize a bitsandbytes 4-bit weight (`Params4bit` data and its `QuantState`) to `quant_state.dtype`.

    Under `torch.compile` this is one custom-op node; in eager mode the dispatcher is skipped.
    """
    args = _op_args(weight, quant_state)
    if torch.compiler.is_compiling():
        return dequantize_nf4_op(*args)
    return _launch(*args)

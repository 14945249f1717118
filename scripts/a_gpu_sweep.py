"""Tune and time puzzle A's reference kernel on a GPU, and break down its per-call host time.

    bash scripts/gpu_run.sh python3 scripts/a_gpu_sweep.py $GRADER_LOGS/a [--only tiles,host,protocol]

- `tiles`: every `solutions.nf4.Tuning` of a grid (tile bytes x warps, then persistent grids, pipelining and
  the stream hint around the best tiles), each checked bit-exact against bitsandbytes, timed with the grader's
  clock (`grader.measure.timing.time_interleaved`: CUDA events, L2 flushed, three rotating inputs) beside
  `fast_dequantize`, bitsandbytes' `dequantize_4bit` and two memory-only ceilings (a plain Triton kernel moving
  the same bytes, and `zero_` of the output alone), on the notebook's three weight sizes.
- `host`: the per-call host time of the reference's eager path and of `fast_dequantize`, step by step.
- `protocol`: the notebook's own timing loop (1000 x (up, gate, down), synchronising after each call) for both.

Writes `a_sweep.json` into the output folder and prints a table per part.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
import triton
import triton.language as tl

import solutions.nf4 as nf4
from grader.measure.launches import CACHE_HINT, INLINE_ASM, record_launches
from grader.measure.timing import copy_bandwidth, time_interleaved
from grader.puzzle_a import oracles
from grader.puzzle_a.notebook import MLP, NOTEBOOK_CASES, protocol_seconds
from grader.puzzle_a.strategies import WeightCase

# The notebook's three weight sizes (its transposed down projections have the same element counts).
SHAPES = [((8192, 2048), torch.float16), ((4096, 1024), torch.bfloat16), ((14336, 4096), torch.bfloat16)]
INPUTS = 3
TILES = [nf4.Tuning(tile_bytes=b, warps=w, register_table=r)
         for b in (512, 1024, 2048) for w in (1, 2, 4) for r in (False, True) if 8 <= b // (32 * w) <= 32]


def _around(best: nf4.Tuning) -> list[nf4.Tuning]:
    """The stream hint's alternatives at one tile."""
    return [dataclasses.replace(best, stream_hint=h) for h in ("", "evict_last") if h != best.stream_hint]


@triton.jit
def _same_bytes_kernel(packed_ptr, absmax_ptr, out_ptr, n_bytes, TILE: tl.constexpr):
    """Memory-only ceiling: read the packed bytes and absmax codes, write the output's words; no decoding."""
    idx = tl.program_id(0) * TILE + tl.arange(0, TILE)
    ok = idx < n_bytes
    b = tl.load(packed_ptr + idx, mask=ok, other=0).to(tl.int32)
    a = tl.load(absmax_ptr + idx // 32, mask=ok, other=0).to(tl.int32)
    tl.store(out_ptr + idx, b | (a << 16), mask=ok)


def _name(t: nf4.Tuning) -> str:
    hint = t.stream_hint or "nohint"
    return (f"{t.tile_bytes}B.w{t.warps}" + (".reg" if t.register_table else ".global")
            + ("" if t.stream_hint == "evict_first" else f".{hint}"))


def _weights(shape: tuple[int, int], dtype: torch.dtype) -> list[oracles.Quantized]:
    return [oracles.quantize(WeightCase(shape, dtype, 1.0, False, False, seed=s).make("cuda")) for s in range(INPUTS)]


def _time_tunings(tunings: list[nf4.Tuning], bandwidth: float) -> list[dict[str, Any]]:
    """Per shape: each tuning's median µs beside the baselines and ceilings (all interleaved in one timing)."""
    rows = []
    for shape, dtype in SHAPES:
        qs = _weights(shape, dtype)
        n = qs[0].quant_state.shape.numel()
        floor_us = ((n + 1) // 2 + qs[0].quant_state.absmax.numel() + n * dtype.itemsize) / bandwidth * 1e6
        expected = oracles.bnb_dequantize(qs[0])
        outs = [torch.empty(n // 2, dtype=torch.int32, device="cuda") for _ in range(INPUTS)]
        fns: dict[str, Callable[[int], Any]] = {
            "fast_dequantize": lambda i: oracles.fast_dequantize(qs[i].weight, qs[i].quant_state),
            "bnb": lambda i: oracles.bnb_dequantize(qs[i]),
            "same_bytes": lambda i: _same_bytes_kernel[(triton.cdiv(n // 2, 2048),)](
                qs[i].weight, qs[i].quant_state.absmax, outs[i], n // 2, TILE=2048, num_warps=4),
            "zero_output": lambda i: outs[i].zero_(),
        }
        broken = {}
        for t in tunings:
            def run(i: int, t: nf4.Tuning = t) -> torch.Tensor:
                nf4.TUNING = t
                return nf4.dequantize_nf4(qs[i].weight, qs[i].quant_state)
            try:
                if not torch.equal(run(0), expected):
                    broken[_name(t)] = "not bit-exact with bitsandbytes"
                    continue
            except Exception as exc:  # a tuning that does not compile is reported, not fatal
                broken[_name(t)] = f"{type(exc).__name__}: {str(exc)[:200]}"
                continue
            fns[_name(t)] = run
        t0 = time.perf_counter()
        timed = time_interleaved(fns, n_inputs=INPUTS, rounds=20, per_round=5)
        nf4.TUNING = nf4.Tuning()
        row = {"shape": list(shape), "dtype": str(dtype), "floor_us": floor_us, "broken": broken,
               "median_us": {k: v.median_us for k, v in timed.items()}, "spread": {k: v.spread for k, v in timed.items()}}
        rows.append(row)
        print(f"{shape} {dtype}: floor {floor_us:.1f} µs; fast_dequantize {timed['fast_dequantize'].summary()}, bnb "
              f"{timed['bnb'].summary()}, same bytes {timed['same_bytes'].summary()}, zero_ "
              f"{timed['zero_output'].summary()} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for k, msg in broken.items():
            print(f"   {k}: {msg}", flush=True)
    return rows


def _ranked(rows: list[dict[str, Any]], names: list[str]) -> list[tuple[float, str]]:
    """(summed median µs over the shapes, name), fastest first; a name missing from any shape is left out."""
    sums = [(sum(r["median_us"][k] for r in rows), k) for k in names if all(k in r["median_us"] for r in rows)]
    return sorted(sums)


def _print_tunings(rows: list[dict[str, Any]], names: list[str]) -> None:
    fast = sum(r["median_us"]["fast_dequantize"] for r in rows)
    print(f"{'tuning':24s}" + "".join(f"{'x'.join(map(str, r['shape'])):>22s}" for r in rows) + "   x fast_dequantize")
    for total, k in _ranked(rows, names):
        cells = "".join(f"{r['median_us'][k]:9.1f} µs {100 * r['floor_us'] / r['median_us'][k]:4.0f}% bw " for r in rows)
        print(f"{k:24s}{cells}   {fast / total:.3f}x", flush=True)


def tiles(out: dict[str, Any]) -> None:
    """The tile grid, then the stream hint's alternatives at the two best tiles."""
    bandwidth = copy_bandwidth()
    out["copy_gbs"] = bandwidth / 1e9
    print(f"copy bandwidth {bandwidth / 1e9:.0f} GB/s", flush=True)
    first = _time_tunings(TILES, bandwidth)
    _print_tunings(first, [_name(t) for t in TILES])
    best = [k for _, k in _ranked(first, [_name(t) for t in TILES])[:2]]
    around = [v for t in TILES if _name(t) in best for v in _around(t)]
    second = _time_tunings([t for t in TILES if _name(t) in best] + around, bandwidth)
    _print_tunings(second, best + [_name(t) for t in around])
    out["tiles"] = {"grid": first, "around_best": second}


def _per_call_us(fn: Callable[[], Any], calls: int = 3000, sync_every: int = 1) -> float:
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for k in range(calls):
        fn()
        if (k + 1) % sync_every == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def host(out: dict[str, Any]) -> None:
    """Each step of one eager call on the notebook's own 4-bit layer (a `Params4bit` weight), alone, per call (µs):
    the reference's path beside fast_dequantize's. What the whole call costs beyond its measured steps is the rest of
    its Python (argument checks, the specialisation key, the output's shape)."""
    torch.manual_seed(3409)
    layer = MLP(1024, 4096, torch.bfloat16, torch.device("cuda")).up_proj
    w, qs = layer.weight, layer.weight.quant_state
    s2, n = qs.state2, qs.shape.numel()
    args = nf4._op_args(w, qs)
    nf4.dequantize_nf4(w, qs)  # compiles and caches
    kernel = next(iter(nf4._COMPILED.values()))
    blocks = nf4._blocks_per_program(qs.blocksize, nf4.TUNING)
    programs = -(-n // (blocks * qs.blocksize))
    out_t = torch.empty(qs.shape, dtype=qs.dtype, device="cuda")
    ptrs = (w.data_ptr(), qs.absmax.data_ptr(), s2.code.data_ptr(), s2.absmax.data_ptr(), qs.offset.data_ptr(),
            qs.code.data_ptr(), out_t.data_ptr())
    kargs = (*ptrs, n, n // 2)
    t = nf4.TUNING
    consts = (qs.blocksize, s2.blocksize, blocks, True, 1, True, t.register_table, t.stream_hint)
    tensors = (w, qs.absmax, s2.code, s2.absmax, qs.offset, qs.code, out_t)
    targs = (*tensors, n, n // 2)
    stream = torch._C._cuda_getCurrentRawStream(0)
    device = qs.absmax.device
    from bitsandbytes.functional import lib
    p = oracles._ptr
    absmax32 = torch.empty(qs.absmax.numel(), dtype=torch.float32, device="cuda")
    parts = {
        "reference: quant-state arguments (_op_args)": lambda: nf4._op_args(w, qs),
        "reference: packed.data_ptr() (Params4bit)": w.data_ptr,
        "reference: the six quant-state data_ptr()": lambda: [t.data_ptr() for t in
                                                              (qs.absmax, s2.code, s2.absmax, qs.offset, qs.code, out_t)],
        "reference: allocation (torch.empty)": lambda: torch.empty(qs.shape, dtype=qs.dtype, device=device),
        "reference: current stream": lambda: torch._C._cuda_getCurrentRawStream(0),
        "reference: launch metadata (the grader's hook point)": lambda: kernel.launch_metadata((programs, 1, 1), stream, *kargs),
        "reference: Triton launcher (run, addresses)": lambda: kernel.run(
            programs, 1, 1, stream, kernel.function, kernel.packed_metadata, None, None, None, *kargs, *consts),
    }
    others = {
        "reference: whole eager call": lambda: nf4.dequantize_nf4(w, qs),
        "compare: Triton launcher (run, tensors)": lambda: kernel.run(
            programs, 1, 1, stream, kernel.function, kernel.packed_metadata, None, None, None, *targs, *consts),
        "compare: Triton JIT front end (kernel[grid])": lambda: nf4._jit_launch(
            programs, tensors, n, n // 2, consts, nf4.TUNING),
        "compare: through torch.library (dispatcher)": lambda: nf4.dequantize_nf4_op(*args),
        "fast_dequantize: whole call": lambda: oracles.fast_dequantize(w, qs),
        "fast_dequantize: allocation (2 tensors, device=weight.device)": lambda: (
            torch.empty(qs.shape, dtype=qs.dtype, device=w.device),
            torch.empty(qs.absmax.numel(), dtype=torch.float32, device=w.device)),
        "fast_dequantize: absmax kernel (ctypes)": lambda: lib.cdequantize_blockwise_fp32(
            p(s2.code), p(qs.absmax), p(s2.absmax), p(absmax32), ctypes.c_int(s2.blocksize),
            ctypes.c_int(qs.absmax.numel()), ctypes.c_void_p(torch._C._cuda_getCurrentRawStream(0))),
        "fast_dequantize: absmax += offset": lambda: absmax32.add_(qs.offset),
        "fast_dequantize: NF4 kernel (ctypes, weight pointer)": lambda: lib.cdequantize_blockwise_bf16_nf4(
            None, p(w), p(absmax32), p(out_t), ctypes.c_int(qs.blocksize), ctypes.c_int(n),
            ctypes.c_void_p(torch._C._cuda_getCurrentRawStream(0))),
        "synchronize (idle device)": torch.cuda.synchronize,
    }
    rows = {name: _per_call_us(fn, sync_every=20) for name, fn in {**parts, **others}.items()}
    rows["reference: rest of its Python"] = rows["reference: whole eager call"] - sum(rows[k] for k in parts)
    rows["reference: whole call + synchronize"] = _per_call_us(lambda: nf4.dequantize_nf4(w, qs).t())
    rows["fast_dequantize: whole call + synchronize"] = _per_call_us(lambda: oracles.fast_dequantize(w, qs).t())
    out["host_us"] = rows
    print("per-call host time, the notebook's 4096x1024 bf16 Linear4bit (µs, 3000 calls after 50 warm-up, "
          "synchronised every 20):")
    for name, us in rows.items():
        print(f"  {name:60s} {us:7.2f}", flush=True)


def protocol(out: dict[str, Any]) -> None:
    """The notebook's loop, reference and fast_dequantize alternating, twice; seconds per case."""
    cases = []
    for bsz, qlen, hd, m, seed, dtype in NOTEBOOK_CASES:
        torch.manual_seed(seed)
        mlp = MLP(hd, m, dtype, torch.device("cuda"))
        cases.append([(layer.weight, layer.weight.quant_state) for layer in (mlp.up_proj, mlp.gate_proj, mlp.down_proj)])
    fns = {"reference": nf4.dequantize_nf4, "fast_dequantize": oracles.fast_dequantize}
    seconds: dict[str, list[list[float]]] = {k: [] for k in fns}
    for _ in range(2):
        for name, fx in fns.items():
            for w, qs in (layer for layers in cases for layer in layers):
                fx(w, qs)  # warm: a first call's compilation is not the protocol's
            seconds[name].append(protocol_seconds(fx, cases))
    out["protocol_s"] = seconds
    print("notebook protocol (s per case, 1000 x 3 calls, two passes):")
    for c, case in enumerate(NOTEBOOK_CASES):
        ref = statistics.fmean(p[c] for p in seconds["reference"])
        fast = statistics.fmean(p[c] for p in seconds["fast_dequantize"])
        print(f"  hd={case[2]} m={case[3]} {str(case[5])[6:]}: reference {ref:.3f} s, fast_dequantize {fast:.3f} s "
              f"-> {fast / ref:.2f}x", flush=True)


def hints(out: dict[str, Any]) -> None:
    """Which cache hints and inline asm the compiled kernel carries (TTIR)."""
    q = _weights((64, 64), torch.bfloat16)[0]
    with record_launches() as log:
        nf4.dequantize_nf4(q.weight, q.quant_state)
    ttir = log.launches[0].compiled.asm["ttir"]
    out["cache_hints_found"] = sorted({m.group(0) for m in CACHE_HINT.finditer(ttir)})
    out["inline_asm_found"] = bool(INLINE_ASM.search(ttir))
    print("hints:", out["cache_hints_found"], "asm:", out["inline_asm_found"], flush=True)


PARTS = {"hints": hints, "host": host, "protocol": protocol, "tiles": tiles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                           "triton": triton.__version__, "tuning": dataclasses.asdict(nf4.TUNING)}
    for part in args.only.split(","):
        PARTS[part](out)
        (args.out_dir / "a_sweep.json").write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()

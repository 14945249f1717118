"""Puzzle A's tasks: what runs in the submission's box (`grader.box.tasks`). Each returns raw facts and outputs;
the judge (`harness.py` and the tests) decides what they mean.

- `A.call`: one call of `dequantize_nf4` under watch (allocator poisoned first, the caller's stream synchronised
  after), the output, what it is and what it shares memory with, and the inputs as the call left them;
- `A.launches`: the Triton launches and other device work of one warm call, each launched kernel compiled for
  sm_75 and sm_90 and searched for inline asm and cache hints;
- `A.compiled`: the entry point inside `torch.compile(fullgraph=True)`: output and graph breaks;
- `A.timing`: kernel times of the candidate and the baselines, interleaved, on weights the judge quantized; the
  notebook's own protocol.
"""

from __future__ import annotations

from typing import Any

import torch

from grader.box.interpreter import limitation
from grader.box.submission import unguarded
from grader.box.tasks import Context, task
from grader.judging.compare import fingerprint
from grader.measure.device_work import cuda_kernels, record_device_work
from grader.measure.launches import CACHE_HINT, INLINE_ASM, compile_for, record_launches
from grader.measure.timing import time_interleaved
from grader.puzzle_a import oracles
from grader.puzzle_a.notebook import protocol_seconds

_STATE_TENSORS = ("absmax", "code", "offset")
_STATE_VALUES = ("blocksize", "dtype", "shape", "nested", "quant_type")


def _state_tensors(quant_state: Any) -> list[tuple[str, torch.Tensor]]:
    out = []
    for prefix, qs in (("", quant_state), ("state2.", getattr(quant_state, "state2", None))):
        for name in _STATE_TENSORS if qs is not None else ():
            t = getattr(qs, name, None)
            if isinstance(t, torch.Tensor):
                out.append((prefix + name, t))
    return out


def _attributes(quant_state: Any) -> dict[str, Any]:
    """Identities of the state's tensors and values of its other fields (what the candidate must leave alone)."""
    snap: dict[str, Any] = {f"{k}#id": id(t) for k, t in _state_tensors(quant_state)}
    for prefix, qs in (("", quant_state), ("state2.", getattr(quant_state, "state2", None))):
        for name in _STATE_VALUES if qs is not None else ():
            if hasattr(qs, name):
                snap[prefix + name] = getattr(qs, name)
    return snap


def _attribute_changes(quant_state: Any, before: dict[str, Any]) -> list[str]:
    now = _attributes(quant_state)
    problems = []
    for key, old in before.items():
        new = now.get(key)
        if key.endswith("#id"):
            if new != old:
                problems.append(f"quant_state.{key[:-3]} was replaced")
        elif new != old:
            problems.append(f"quant_state.{key} changed from {old!r} to {new!r}")
    return problems


def poison_allocator(nbytes: int, device: torch.device) -> None:
    """Leave a freed block of `nbytes` filled with 0xFF (NaN in fp16/bf16/fp32) for the allocator to hand out."""
    junk = torch.empty(nbytes, dtype=torch.uint8, device=device)
    junk.fill_(0xFF)
    del junk


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.detach().as_subclass(torch.Tensor)


def describe_output(out: Any, inputs: list[torch.Tensor], kept: dict[str, Any]) -> dict[str, Any]:
    """What a returned object is: its type, whether a plain tensor, and which inputs or kept outputs it shares
    storage with. The output itself travels only if it is a plain tensor (a subclass's code stays here)."""
    facts: dict[str, Any] = {"type": type(out).__name__, "tensor": isinstance(out, torch.Tensor),
                             "plain": type(out) is torch.Tensor, "shares_input": False, "shares_kept": []}
    if isinstance(out, torch.Tensor) and out.device.type != "meta":
        ptr = out.untyped_storage().data_ptr()
        facts["shares_input"] = any(t.untyped_storage().data_ptr() == ptr for t in inputs)
        facts["shares_kept"] = sorted(name for name, k in kept.items() if isinstance(k, torch.Tensor)
                                      and k.device.type != "meta" and k.untyped_storage().data_ptr() == ptr)
    return facts


@task("A.call")
def call(ctx: Context, weight: torch.Tensor, quant_state: Any, *, keep: str | None = None) -> dict[str, Any]:
    """One call of the entry point: {"output": plain tensor or None, "facts": ..., "inputs_after": [...]}."""
    fn = ctx.entry()
    inputs = [weight] + [t for _, t in _state_tensors(quant_state)]
    before = _attributes(quant_state)
    poison_allocator(quant_state.shape.numel() * quant_state.dtype.itemsize, weight.device)
    out = fn(weight, quant_state)
    if weight.is_cuda:  # the caller's stream only: work left on a side stream must not be waited for here
        torch.cuda.current_stream(weight.device).synchronize()
    facts = describe_output(out, inputs, ctx.kept)
    # What a caller reads right after the call, copied on its stream now (a side stream may still be writing).
    seen = _plain(out).clone() if facts["plain"] else None
    facts["state_changes"] = _attribute_changes(quant_state, before)
    if keep is not None:
        ctx.kept[keep] = out
    return {"output": seen, "facts": facts, "inputs_after": [_plain(t) for t in inputs]}


@task("A.launches")
def launches(ctx: Context, cases: list[tuple[torch.Tensor, Any]]) -> dict[str, Any]:
    """Of the first case the entry point runs on: the launches of a warm call (kernel names, compiled code's
    hints, sm_75/sm_90 compiles), the torch work and allocations of another, and the CUDA kernels the profiler
    sees; the outputs of the two observed calls and the inputs after all of them, for the judge to hold those calls
    to the contract as any other. `tried` says why earlier cases were passed over (the error, and why this machine
    cannot decide it)."""

    fn = ctx.entry()
    tried = []
    for index, (weight, quant_state) in enumerate(cases):
        inputs = [weight] + [t for _, t in _state_tensors(quant_state)]
        before = _attributes(quant_state)
        try:
            fn(weight, quant_state)  # warm-up: compilation and autotuning are not the call
        except Exception as exc:
            tried.append({"case": index, "error": f"{type(exc).__name__}: {str(exc)[:200]}",
                          "undecidable": limitation(exc)})
            continue
        with record_launches() as log:
            launched = fn(weight, quant_state)
        kernels = []
        for launch in log.launches:
            ttir = launch.ttir()
            entry: dict[str, Any] = {"name": launch.name, "compiled_on_device": ttir is not None}
            for capability in (75, 90):
                ok, message, code = compile_for(launch, capability)
                entry[f"sm_{capability}"] = {"ok": ok, "message": message}
                if capability == 90 and ttir is None:
                    ttir = code
            entry["inline_asm"] = bool(ttir and INLINE_ASM.search(ttir))
            entry["cache_hints"] = sorted({m.group(0) for m in CACHE_HINT.finditer(ttir or "")})
            kernels.append(entry)
        fn(weight, quant_state)
        with record_launches() as log2, record_device_work(log2) as work:
            out = fn(weight, quant_state)
        output_bytes = out.numel() * out.element_size() if isinstance(out, torch.Tensor) else 0
        profiled = cuda_kernels(lambda: fn(weight, quant_state)) if weight.is_cuda else None
        if weight.is_cuda:
            torch.cuda.synchronize(weight.device)
        observed = {"launches recorded": launched, "device work recorded": out}
        return {"case": index, "tried": tried, "kernels": kernels, "compute_ops": work.compute_ops,
                "allocated_bytes": work.allocated_bytes, "peak_cuda_bytes": work.peak_cuda_bytes,
                "output_bytes": output_bytes, "cuda_kernels": profiled,
                "observed_outputs": {k: _plain(o).clone() if type(o) is torch.Tensor else None
                                     for k, o in observed.items()},
                "inputs_after": [_plain(t) for t in inputs], "state_changes": _attribute_changes(quant_state, before)}
    return {"case": None, "tried": tried}


@task("A.compiled")
def compiled(ctx: Context, weight: torch.Tensor, quant_state: Any) -> dict[str, Any]:
    """The entry point in `torch.compile(fullgraph=True)` beside a neighbouring op: output, graph breaks, graphs."""
    from torch._dynamo.utils import counters

    fn = ctx.entry()

    def f(w: torch.Tensor, qs: Any) -> torch.Tensor:
        return fn(w, qs) * 1  # a neighbouring op, as in a real graph

    torch._dynamo.reset()
    counters.clear()  # bitsandbytes' own internal compiles must not count against the candidate
    out = torch.compile(f, fullgraph=True)(weight, quant_state)
    return {"output": _plain(out) if isinstance(out, torch.Tensor) else None,
            "graph_breaks": {str(k): int(v) for k, v in counters["graph_break"].items()},
            "graphs": int(counters["stats"]["unique_graphs"])}


_BASELINES = ("fast_dequantize", "bnb")


def _baseline(name: str):
    if name == "fast_dequantize":
        return oracles.fast_dequantize
    return lambda w, qs: oracles.bnb_dequantize(oracles.Quantized(w, qs))


@task("A.timing")
def timing(ctx: Context, weights: list[list[tuple[torch.Tensor, Any]]], *, outputs: bool) -> list[dict[str, Any]]:
    """Kernel times (µs samples) of the candidate, Unsloth's `fast_dequantize` and bitsandbytes, interleaved
    (`grader.measure.timing.time_interleaved`), for each weight slot: `weights[k]` holds the slot's input copies,
    rotated between calls. Per slot also the fingerprint (`grader.judging.compare.fingerprint`) of every timed candidate
    output, by input copy, and with `outputs` one untimed output per copy, for the judge to check."""

    fn = unguarded(ctx.entry())  # timing loops measure the submission, not the grader's checks around a call
    results = []
    for copies in weights:
        prints: list[list[torch.Tensor]] = [[] for _ in copies]

        def observe(name: str, i: int, out: Any) -> None:
            if name == "candidate":
                prints[i].append(fingerprint(out) if isinstance(out, torch.Tensor)
                                 else torch.full((), -1, dtype=torch.int64, device=ctx.device))

        calls = {"candidate": lambda i: fn(*copies[i]),
                 **{b: (lambda i, f=_baseline(b): f(*copies[i])) for b in _BASELINES}}
        times = time_interleaved(calls, n_inputs=len(copies), observe=observe)
        untimed = [fn(*copy) for copy in copies] if outputs else []
        torch.cuda.synchronize()
        results.append({"samples_us": {name: t.samples_us for name, t in times.items()},
                        "fingerprints": [[int(x) for x in torch.stack(p).tolist()] for p in prints],
                        "outputs": [o.detach().as_subclass(torch.Tensor) if isinstance(o, torch.Tensor) else None
                                    for o in untimed]})
    return results


@task("A.protocol")
def protocol(ctx: Context, cases: list[list[tuple[torch.Tensor, Any]]], who: str) -> list[float]:
    """The notebook's timing loop for `who` ("candidate" or "fast_dequantize"): per case, 1000 x (up, gate, down),
    synchronising after each call; the seconds per case (host clock, after the device is idle)."""
    return protocol_seconds(unguarded(ctx.entry()) if who == "candidate" else _baseline(who), cases)

"""Calling a puzzle-A candidate under watch: inputs cloned and checked, output poisoned and validated."""

from __future__ import annotations

from typing import Any, Callable

import torch

from grader.interpreter import limitation
from grader.outcomes import not_measured
from grader.puzzle_a.oracles import Quantized

_STATE_TENSORS = ("absmax", "code", "offset")
_STATE_VALUES = ("blocksize", "dtype", "shape", "nested", "quant_type")


class _Saved:
    """A state tensor, its identity and a copy of its contents."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor, self.copy, self.dtype = tensor, tensor.clone(), tensor.dtype


def snapshot(quant_state: Any) -> dict[str, Any]:
    """Every field of a QuantState that the candidate must leave alone (tensors cloned)."""
    snap: dict[str, Any] = {}
    for prefix, qs in (("", quant_state), ("state2.", getattr(quant_state, "state2", None))):
        if qs is None:
            continue
        for name in _STATE_TENSORS:
            t = getattr(qs, name, None)
            if isinstance(t, torch.Tensor):
                snap[prefix + name] = _Saved(t)
        for name in _STATE_VALUES:
            if hasattr(qs, name):
                snap[prefix + name] = getattr(qs, name)
    return snap


def _changes(quant_state: Any, before: dict[str, Any]) -> list[str]:
    problems = []
    for key, old in before.items():
        obj = quant_state.state2 if key.startswith("state2.") else quant_state
        now = getattr(obj, key.removeprefix("state2."), None)
        if isinstance(old, _Saved):
            if now is not old.tensor:
                problems.append(f"quant_state.{key} was replaced")
            elif now.dtype != old.dtype or not torch.equal(now, old.copy):
                problems.append(f"quant_state.{key} was modified in place")
        elif now != old:
            problems.append(f"quant_state.{key} changed from {old!r} to {now!r}")
    return problems


def poison_allocator(nbytes: int, device: torch.device) -> None:
    """Leave a freed block of `nbytes` filled with 0xFF (NaN in fp16/bf16/fp32) for the allocator to hand out."""
    junk = torch.empty(nbytes, dtype=torch.uint8, device=device)
    junk.fill_(0xFF)
    del junk


def call_candidate(fn: Callable[[torch.Tensor, Any], torch.Tensor], q: Quantized) -> torch.Tensor:
    """Call `fn(weight, quant_state)` and check the contract; AssertionError names what was broken."""
    qs = q.quant_state
    weight_before = q.weight.clone()
    state_before = snapshot(qs)
    poison_allocator(qs.shape.numel() * qs.dtype.itemsize, q.weight.device)
    try:
        out = fn(q.weight, qs)
    except Exception as exc:  # the submission's own error, named as the contract's
        undecidable = limitation(exc)
        if undecidable:
            not_measured(undecidable)
        raise AssertionError(f"puzzle A: dequantize_nf4(weight, quant_state) raised {type(exc).__module__}."
                             f"{type(exc).__qualname__}: {exc} (expected a tensor of quant_state.shape)") from exc
    if q.weight.is_cuda:  # the caller's stream only: work left on a side stream must not be waited for here
        torch.cuda.current_stream(q.weight.device).synchronize()
    problems = []
    if out is None or not isinstance(out, torch.Tensor):
        problems.append(f"returned {type(out).__name__}, expected a torch.Tensor")
    else:
        if type(out) is not torch.Tensor:
            problems.append(f"returned the tensor subclass {type(out).__name__}, expected a plain torch.Tensor")
        if tuple(out.shape) != tuple(qs.shape):
            problems.append(f"output shape {tuple(out.shape)}, expected quant_state.shape {tuple(qs.shape)}")
        if out.dtype != qs.dtype:
            problems.append(f"output dtype {out.dtype}, expected quant_state.dtype {qs.dtype}")
        if out.device != q.weight.device:
            problems.append(f"output on {out.device}, expected the weight's device {q.weight.device}")
        inputs = [q.weight] + [v.tensor for v in state_before.values() if isinstance(v, _Saved)]
        if any(out.untyped_storage().data_ptr() == t.untyped_storage().data_ptr() for t in inputs):
            problems.append("output shares memory with an input")
    if not torch.equal(q.weight, weight_before):
        problems.append("the packed weight was modified")
    problems += _changes(qs, state_before)
    assert not problems, "contract: puzzle A: dequantize_nf4(weight, quant_state) " + "; ".join(problems)
    return out

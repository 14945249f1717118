"""Calling a puzzle-A candidate in its box and judging the call's contract here, in the judge: a new plain tensor
of `quant_state`'s shape, dtype and device; the inputs as they were; no memory shared with them or with an
output the caller still holds."""

from __future__ import annotations

import time
from typing import Any

import torch

from grader.box import watchdog
from grader.box.client import Box
from grader.judging.box_calls import box_call
from grader.judging.compare import tensor_problems
from grader.puzzle_a.oracles import Quantized

_INPUT_NAMES = ("the packed weight", "quant_state.absmax", "quant_state.code", "quant_state.offset",
                "quant_state.state2.absmax", "quant_state.state2.code")


def _inputs(q: Quantized) -> list[tuple[str, torch.Tensor]]:
    """The tensors a call receives, as `grader.puzzle_a.tasks.call` returns them after the call."""
    qs = q.quant_state
    found = [(_INPUT_NAMES[0], q.weight)]
    for prefix, state in (("quant_state.", qs), ("quant_state.state2.", getattr(qs, "state2", None))):
        for name in ("absmax", "code", "offset") if state is not None else ():
            t = getattr(state, name, None)
            if isinstance(t, torch.Tensor):
                found.append((prefix + name, t))
    return found


def call_deadline(q: Quantized) -> float:
    """The call's deadline (`grader.box.watchdog`), from bitsandbytes' time for the same dequantization here."""
    from grader.puzzle_a.oracles import bnb_dequantize

    start = time.perf_counter()
    bnb_dequantize(q)
    if q.weight.is_cuda:
        torch.cuda.synchronize(q.weight.device)
    return watchdog.deadline(q.weight.device.type, time.perf_counter() - start)


def run_call(box: Box, q: Quantized, *, doing: str, keep: str | None = None,
             refusal: str | None = None) -> dict[str, Any]:
    """The raw reply of `A.call`: the output (None unless a plain tensor), its facts, the inputs after the call; a
    raise is told as `grader.judging.box_calls.box_call` tells it, `doing` saying which call it was."""
    return box_call(box, "A.call", q.weight, q.quant_state, keep=keep, doing=doing, refusal=refusal,
                    deadline=call_deadline(q))


def contract_problems(q: Quantized, got: dict[str, Any], box: Box) -> list[str]:
    """What the call broke of the contract, judged from its reply and the judge's own copies of the inputs."""
    qs, facts, out = q.quant_state, got["facts"], got["output"]
    problems = []
    if not facts["tensor"]:
        problems.append(f"returned {facts['type']}, expected a torch.Tensor")
    elif not facts["plain"]:
        problems.append(f"returned the tensor subclass {facts['type']}, expected a plain torch.Tensor")
    else:
        problems += tensor_problems(out, shape=qs.shape, dtype=qs.dtype, device=q.weight.device, what="output",
                                    source="quant_state.", device_source="the weight's device")
        if facts["shares_input"]:
            problems.append("output shares memory with an input")
        if facts["shares_kept"]:
            problems.append("the output shares memory with the output of an earlier call, which the caller still "
                            "holds: the earlier result is overwritten; return a new tensor")
    return problems + modified_inputs(q, got["inputs_after"], box) + facts["state_changes"]


def modified_inputs(q: Quantized, inputs_after: list[torch.Tensor], box: Box) -> list[str]:
    """Which of the call's input tensors (as the box sent them back) differ from the judge's own copies."""
    problems = []
    for (name, mine), after in zip(_inputs(q), inputs_after):
        if mine.shape != after.shape or mine.dtype != after.dtype or not torch.equal(mine, after):
            problems.append(f"{name} was modified" if name == _INPUT_NAMES[0] else f"{name} was modified in place")
            box.forget(mine)  # the box's copy is the submission's now: send the judge's again next time
    return problems


def call_candidate(box: Box, q: Quantized, *, keep: str | None = None, what: str | None = None) -> torch.Tensor:
    """Call `dequantize_nf4(weight, quant_state)` in the box and check the contract; AssertionError names what
    was broken, or the submission's exception with its own frame, and the input (`what`, by default the weight's
    shape and dtype); not measured where a CPU cannot decide (`grader.judging.box_calls.box_call`). With `keep`, the
    box holds the output under that name (as a caller would), so later calls are checked against it."""
    qs = q.quant_state
    what = what or f"a {tuple(qs.shape)} {str(qs.dtype).removeprefix('torch.')} weight"
    got = run_call(box, q, keep=keep, doing=f"puzzle A: dequantize_nf4(weight, quant_state) on {what}")
    problems = contract_problems(q, got, box)
    assert not problems, f"contract: puzzle A: dequantize_nf4(weight, quant_state) on {what}: " + "; ".join(problems)
    return got["output"]

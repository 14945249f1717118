"""Puzzle A's correctness standard: what a correct NF4 dequantization may return, derived from rounding.

The exact value of element i is, in real arithmetic (float64 here, which holds it exactly enough),

    v = code[nibble_i] * (code2[absmax_q] * absmax2 + offset)

A correct kernel evaluates it in float32 and then rounds to the output dtype. It may do bitsandbytes'
separate multiply and add, contract them into one FMA (ptxas does so unless told not to), or take the
other order `nf4*code2*absmax2 + nf4*offset`; each float32 rounding errs by at most u = 2**-24 of a value
that is at most M = |code[nibble]| * (|code2[q] * absmax2| + |offset|) in magnitude, and the widest of
those evaluations rounds four times. So the float32 value such a kernel holds lies within

    E = ((1 + u)**4 - 1) * M     of v,

and the output, once rounded to nearest even in its dtype, must be what some value of [v - E, v + E]
rounds to. An output `o` passes when |o - v| <= E + gap/2, where gap is the distance from `o` to its
neighbour on v's side in the output dtype; for float32 outputs the last rounding is that gap/2 itself.
An output that truncates instead of rounding, or is 1 ulp off in the wrong direction, fails wherever v is
not within E of a rounding boundary, i.e. almost everywhere (E is 2**-21 of an fp16/bf16 ulp or less).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grader.judging.compare import from_ordered, mismatch_report, ordered, ulp_distance
from grader.judging.verdict import Verdict

U32 = 2.0**-24  # unit roundoff of float32
MAP_ROWS = 64  # rows of the wrong-element map (`wrong_map`): the absmax blocks, grouped
ROUNDINGS = 4  # the most float32 roundings a correct evaluation of the formula does (see above)
RELATIVE_BOUND = (1 + U32) ** ROUNDINGS - 1


@dataclass
class Exact:
    """The exact values of a dequantization and the float32 error a correct evaluation may add to each."""

    values: torch.Tensor  # float64, the formula in real arithmetic
    bound: torch.Tensor  # float64, E per element


def nibbles(packed: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """The 4-bit codes at flat positions `at` of a packed weight, high nibble first (bitsandbytes' order)."""
    b = packed.reshape(-1)[at // 2].long()
    return torch.where(at % 2 == 0, b >> 4, b & 15)


def exact(packed: torch.Tensor, quant_state, at: torch.Tensor | None = None) -> Exact:
    """The exact value of every element of `quant_state.shape` (shaped so), or of the flat positions `at` (a 1-D
    int64 CPU tensor), and each one's allowed float32 error."""
    qs = quant_state
    n = qs.shape.numel()
    index = torch.arange(n) if at is None else at
    # A plain view: `Params4bit.cpu()` would move its quant state to the CPU in place, under the caller's feet.
    code = qs.code.double().cpu()[nibbles(packed.as_subclass(torch.Tensor).cpu(), index)]
    if qs.nested:
        s2 = qs.state2
        scale2 = s2.absmax.double().cpu().repeat_interleave(s2.blocksize)[: qs.absmax.numel()]
        scaled = s2.code.double().cpu()[qs.absmax.cpu().long()] * scale2
        offset = float(qs.offset)
        absmax, magnitude = scaled + offset, scaled.abs() + abs(offset)
    else:
        absmax = qs.absmax.double().cpu()
        magnitude = absmax.abs()
    block = index // qs.blocksize
    values, bound = code * absmax[block], RELATIVE_BOUND * code.abs() * magnitude[block]
    return Exact(values.view(qs.shape), bound.view(qs.shape)) if at is None else Exact(values, bound)


def violations(out: torch.Tensor, truth: Exact) -> torch.Tensor:
    """A bool mask of the elements of `out` that no correct evaluation could have produced."""
    o = out.detach().cpu()
    od = o.double()
    v = truth.values
    toward = torch.sign(v - od).long()
    neighbour = from_ordered(ordered(o) + toward, o.dtype).double()
    half_gap = torch.where(toward == 0, torch.zeros_like(od), (neighbour - od).abs() / 2)
    ok = (od - v).abs() <= truth.bound + half_gap
    return ~(ok & torch.isfinite(od))


def explain(out: torch.Tensor, truth: Exact, bad: torch.Tensor, *, blocksize: int, what: str,
            at: torch.Tensor | None = None) -> str:
    """One line on how `out` departs from the standard: count, worst distance, the first wrong element (`out` and
    `truth` hold the flat positions `at` of the weight, when given)."""
    o = out.detach().cpu().reshape(-1)
    flat_bad = bad.reshape(-1)
    k = int(flat_bad.nonzero()[0])
    i = k if at is None else int(at[k])
    rounded = truth.values.reshape(-1).to(out.dtype)  # the nearest value, for the ulp figures
    ulps = ulp_distance(o[flat_bad], rounded[flat_bad])
    sampled = "" if at is None else f" (of {o.numel()} sampled positions)"
    return (f"{int(flat_bad.sum())} of {o.numel()} elements{sampled} are not what any correct float32 evaluation "
            f"rounds to (up to {int(ulps.max())} ulp from the exact value rounded to nearest); first at flat index {i} "
            f"(block {i // blocksize}): got {o[k].item()!r}, exact {truth.values.reshape(-1)[k].item()!r}; {what}")


def wrong_map(bad: torch.Tensor, *, numel: int, blocksize: int, at: torch.Tensor | None = None) -> dict[str, Any]:
    """Where the wrong elements lie, as the HTML report draws it: counts per (group of absmax blocks, position in the
    block), at most `MAP_ROWS` groups of `blocks_per_row` consecutive blocks (`bad` over the flat positions `at`,
    when given)."""
    flat = bad.reshape(-1).nonzero().reshape(-1)
    index = flat if at is None else at[flat]
    blocks = -(-numel // blocksize)
    per_row = -(-blocks // MAP_ROWS)
    rows = -(-blocks // per_row)
    cells = (index // blocksize // per_row) * blocksize + index % blocksize
    counts = torch.bincount(cells, minlength=rows * blocksize).reshape(rows, blocksize)
    return {"numel": numel, "blocksize": blocksize, "blocks": blocks, "blocks_per_row": per_row,
            "wrong": int(flat.numel()), "judged": numel if at is None else int(at.numel()), "counts": counts.tolist()}


def judge(out: torch.Tensor, packed: torch.Tensor, quant_state, *, what: str,
          at: torch.Tensor | None = None) -> Verdict:
    """`out` judged as a dequantization of (`packed`, `quant_state`): its failures (`what` names the output in
    each), and as `data` the `wrong_map` of values that no correct evaluation gives (empty when there are none).
    With `at` (flat positions, a 1-D int64 CPU tensor), only those elements' values are judged (the shape still
    is). The standard states no share of an allowance: each element is rounded correctly or not."""
    if at is not None and isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(quant_state.shape):
        out = out.reshape(-1)[at.to(out.device)]
    elif at is not None:  # a wrong shape: judged whole, for its metadata
        at = None
    truth = exact(packed, quant_state, at)
    expected = truth.values.to(quant_state.dtype)
    reasons = mismatch_report(out, expected.to(out.device) if isinstance(out, torch.Tensor) else expected,
                              atol=float("inf"), rtol=0, what="output")
    if reasons:  # metadata (shape, dtype, device) or NaN/Inf where the exact value is finite
        return Verdict([f"{r}; {what}" for r in reasons])
    if out.numel() == 0:
        return Verdict()
    bad = violations(out, truth)
    if not bad.any():
        return Verdict()
    return Verdict([explain(out, truth, bad, blocksize=quant_state.blocksize, what=what, at=at)],
                   data=wrong_map(bad, numel=quant_state.shape.numel(), blocksize=quant_state.blocksize, at=at))

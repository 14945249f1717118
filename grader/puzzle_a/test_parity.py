"""Puzzle A, the `correct` gate: every element is what a correct float32 evaluation rounds to.

The standard (`grader.puzzle_a.standard`) is the exact value in float64 with the rounding a correct
kernel may do: bitsandbytes' separate multiply and add, an FMA, either order. bitsandbytes is no
oracle here (it is one correct evaluation among several); the fraction of elements bit-exact with it is
reported. The gate covers the puzzle's output dtypes, float16 and bfloat16; float32 is `beyond_scope`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import pytest
from hypothesis import given, settings, strategies as st

from grader.box import watchdog
from grader.puzzle_a import oracles, standard
from grader.puzzle_a.harness import call_candidate
from grader.puzzle_a.strategies import PUZZLE_DTYPES, WeightCase, weight_cases


class LargestWrong:
    """For the HTML report: where the wrong elements lie (`standard.wrong_map`) in the largest failing input a test
    sees, recorded under the input's description (a shrunk example may hold one element)."""

    def __init__(self, criterion_data: Callable[..., None]) -> None:
        self._record, self._largest = criterion_data, -1

    def keep(self, what: str, found: dict[str, Any]) -> None:
        """The wrong-element map of one input (a verdict's `data`), described by `what`: recorded if it is the
        largest so far."""
        if found["numel"] > self._largest:
            self._largest = found["numel"]
            self._record(wrong_elements={what: found})


def _graded_call(a_box, q: oracles.Quantized, case: object, wrong: LargestWrong, *, context: str = "") -> float:
    """Call the candidate, judge it by the standard and return the fraction bit-exact with bitsandbytes.

    It fails from one place whatever went wrong:
    unwritten or cached outputs hold whatever memory held, so one example can break the contract in one
    run and miss the standard in the next; a single raise site keeps Hypothesis' replays consistent.
    """
    out, problems = None, []
    try:
        out = call_candidate(a_box, q, what=f"input {case}")
    except AssertionError as exc:
        problems = [str(exc)]
    if out is not None:
        verdict = standard.judge(out, q.weight, q.quant_state, what=f"input {case}")
        if verdict.data:
            wrong.keep(f"{context}{case}", verdict.data)
        problems = verdict.failures
    if problems:
        raise AssertionError(context + "\n".join(problems))
    return (out == oracles.bnb_dequantize(q)).float().mean().item() if out.numel() else 1.0


@pytest.mark.criterion("A", "correct")
def test_every_element_is_correctly_rounded(a_box, device, max_numel, criterion_detail, criterion_data, shrink_budget,
                                            progress):
    """Random shapes (1 element up), dtypes, scales, outliers and zero blocks, quantized by bitsandbytes."""
    exact: list[float] = []
    budget = shrink_budget
    wrong = LargestWrong(criterion_data)

    @given(case=weight_cases(max_numel=max_numel, dtypes=PUZZLE_DTYPES))
    def check(case: WeightCase) -> None:
        with budget.example():
            exact.append(_graded_call(a_box, oracles.quantize(case.make(device)), case, wrong))

    with progress.step("A: correct, every element of random weights",
                       f"Hypothesis: {settings.default.max_examples} weights of up to {max_numel} elements, "
                       f"float16 and bfloat16"):
        check()
    criterion_detail(f"{len(exact)} weights (float16, bfloat16) within the rounding of a correct float32 evaluation; "
                     f"bit-exact with bitsandbytes: {min(exact):.4f} worst, {sum(exact) / len(exact):.4f} mean")


@pytest.mark.criterion("A", "correct")
def test_rewritten_weight_gives_a_new_result(a_box, device, shrink_budget, criterion_data, progress):
    """No caching by pointer: after the weight and its state are overwritten in place, the output follows."""
    budget = shrink_budget
    wrong = LargestWrong(criterion_data)

    @given(first=weight_cases(max_numel=1 << 16, dtypes=PUZZLE_DTYPES), seed=st.integers(0, 2**31 - 1))
    def check(first: WeightCase, seed: int) -> None:
        with budget.example():
            rewrite_and_grade(first, seed)

    def rewrite_and_grade(first: WeightCase, seed: int) -> None:
        q = oracles.quantize(first.make(device))
        _graded_call(a_box, q, first, wrong, context="before the weight was rewritten: ")
        second = WeightCase(first.shape, first.dtype, first.scale * 3, not first.outliers, False, seed)
        q2 = oracles.quantize(second.make(device))
        qs, qs2 = q.quant_state, q2.quant_state
        q.weight.copy_(q2.weight)
        qs.absmax.copy_(qs2.absmax)
        qs.offset.copy_(qs2.offset)
        qs.state2.absmax.copy_(qs2.state2.absmax)
        _graded_call(a_box, q, second, wrong,
                     context="after the weight and its state were rewritten in place: ")

    with progress.step("A: correct, weights rewritten in place between calls",
                       f"Hypothesis: {settings.default.max_examples} pairs of calls"):
        check()


@pytest.mark.criterion("A", "correct")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_linear4bit_weight(a_box, device, dtype, criterion_data):
    """The exact object the notebook passes: a `Linear4bit` weight quantized by moving it to the device."""
    from bitsandbytes.nn import Linear4bit

    layer = Linear4bit(192, 320, bias=False, compute_dtype=dtype, compress_statistics=True, quant_type="nf4")
    layer = layer.to(device)
    layer.weight.quant_state.dtype = dtype
    q = oracles.Quantized(layer.weight.data, layer.weight.quant_state)
    _graded_call(a_box, q, f"Linear4bit(192, 320), {str(dtype).removeprefix('torch.')}",
                 LargestWrong(criterion_data))


@pytest.mark.criterion("A", "correct")
def test_each_call_returns_a_new_tensor(a_box, device):
    """A caller keeps each result (the gate and the up projection's weights, side by side): a later call, on other
    weights of the same or another shape, must leave an earlier result as it was and share no memory with it."""
    cases = [WeightCase((64, 96), torch.bfloat16, 1.0, False, False, seed=21),
             WeightCase((64, 96), torch.bfloat16, 1.0, True, False, seed=22),
             WeightCase((80, 48), torch.float16, 1.0, False, True, seed=23)]
    names = [f"result-{i}" for i in range(len(cases))]
    deadline = watchdog.deadline(device.type)
    try:
        first = [call_candidate(a_box, oracles.quantize(case.make(device)), keep=name, what=f"call {i + 1} of "
                                f"{len(cases)}, {case}") for i, (case, name) in enumerate(zip(cases, names))]
        for i, (name, held) in enumerate(zip(names, first)):
            now = a_box.run("box.fetch", name, deadline=deadline)
            assert torch.equal(now, held), (
                f"contract: puzzle A: the output of call {i + 1} was overwritten by a later call (a caller still held "
                f"it); return a new tensor from every call")
    finally:
        a_box.run("box.drop", *names, deadline=deadline)

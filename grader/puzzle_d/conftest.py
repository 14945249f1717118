"""Puzzle D fixtures: the entry point, numeric settings held fixed per test, the parity check, puzzle-size memory.

What counts as correct lives in `standard.py`; these fixtures only bind it to the submission and the scorecard.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
import torch
from hypothesis import settings

from grader.judging.box_calls import open_box
from grader.judging.progress import Progress
from grader.puzzle_d import puzzle_size
from grader.puzzle_d.oracles import exact_matmuls
from grader.puzzle_d.harness import Parity


@pytest.fixture(scope="session")
def memory_efficient_linear(submission: Any) -> Any:
    """The box that runs the submission's `memory_efficient_linear` (`grader.box.client.Box`), or a skip as
    "D not attempted"."""
    return open_box(submission, "D")


@pytest.fixture(autouse=True)
def _exact_matmuls() -> Iterator[None]:
    """Full-precision float32 matmuls (no TF32) during each D test (`oracles.exact_matmuls`; the box's tasks run
    under the same)."""
    with exact_matmuls():
        yield


@pytest.fixture
def parity(request: pytest.FixtureRequest, criterion_name: str, memory_efficient_linear: Any,
           criterion_detail: Callable[..., None], criterion_data: Callable[..., None],
           progress: Progress) -> Iterator[Parity]:
    """`parity(inputs, X, linear, labels, forward_function, chunk_size, upstream) -> Result`: `harness.Parity` on the
    submission, failing the criterion the test's marker names; after each problem judged, the scorecard's detail gets
    its running summary, and its data the largest share of the allowance used per loss. The test's problems are one
    progress step."""
    with progress.step(f"D: {criterion_name.removeprefix('D.')}, {request.node.name}",
                       f"problems against the float64 truth: {settings.default.max_examples} drawn by Hypothesis, "
                       f"and its explicit examples"):
        yield Parity(memory_efficient_linear, criterion_name, lambda summary: criterion_detail(summary, replace=True),
                     lambda errors: criterion_data(errors=errors))


@pytest.fixture
def puzzle_memory(memory_efficient_linear: Any, device: torch.device, criterion_name: str,
                  criterion_detail: Callable[..., None], criterion_data: Callable[..., None],
                  progress: Progress) -> Callable[[str, str], None]:
    """`puzzle_memory(loss, name)`: `puzzle_size.measure` of the submission on `"ce"` or `"grpo"`, judged by
    `MemoryComparison.judge`; the verdict's summary and peaks go to the scorecard, a failure fails the criterion the
    test's marker names."""
    def check(loss: str, name: str) -> None:
        with progress.step(f"D: {name} peak memory at the puzzle's size",
                           f"{puzzle_size.PUZZLE_TEXT}; the naive version here, the submission in its box"):
            memory, where = puzzle_size.measure(memory_efficient_linear, device, loss)
        verdict = memory.judge(name, where)
        criterion_detail(verdict.summary, memory.ratio)
        criterion_data(peaks={name: verdict.data})
        assert verdict.passed, f"{criterion_name}: {verdict.message()}"
    return check

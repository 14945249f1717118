"""Puzzle D fixtures: the entry point, numeric settings held fixed per test, the parity judge, puzzle-size memory.

What counts as correct lives in `standard.py`; these fixtures only bind it to the submission and the scorecard.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
import torch

from grader.puzzle_d import puzzle_size
from grader.puzzle_d.oracles import Result
from grader.puzzle_d.standard import Judge, MemoryComparison


@pytest.fixture
def memory_efficient_linear(submission: Any) -> Callable[..., torch.Tensor]:
    """The submission's `memory_efficient_linear`, or a skip as "D not attempted"."""
    return submission.require("D")


@pytest.fixture(autouse=True)
def _exact_matmuls() -> Iterator[None]:
    """Full-precision float32 matmuls (no TF32) during each D test; the previous settings come back after."""
    precision = torch.get_float32_matmul_precision()
    cuda_tf32 = torch.backends.cuda.matmul.allow_tf32
    default_dtype = torch.get_default_dtype()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_float32_matmul_precision(precision)
    torch.backends.cuda.matmul.allow_tf32 = cuda_tf32
    torch.set_default_dtype(default_dtype)


@pytest.fixture
def judge(memory_efficient_linear: Callable[..., torch.Tensor], criterion_detail: Callable[..., None]
          ) -> Callable[..., Result]:
    """`judge(criterion, inputs, X, linear, labels, forward_function, chunk_size, upstream, *, candidate_forward)`.

    `standard.Judge` on the submission; after each problem the scorecard's detail gets its running summary.
    """
    parity = Judge(memory_efficient_linear)

    def check(*args: Any, **kwargs: Any) -> Result:
        got = parity(*args, **kwargs)
        criterion_detail(parity.summary(), replace=True)
        return got

    return check


@pytest.fixture
def puzzle_memory(memory_efficient_linear: Callable[..., torch.Tensor], device: torch.device
                  ) -> Callable[[str], tuple[MemoryComparison, str]]:
    """`puzzle_memory(loss)`: `puzzle_size.measure` of the submission on `"ce"` or `"grpo"`."""
    return lambda loss: puzzle_size.measure(memory_efficient_linear, device, loss)

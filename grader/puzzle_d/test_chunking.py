"""D.allows_dynamic_chunk_sizes: any chunk size is honoured and gives the same result within tolerance."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from grader.puzzle_d.losses import cross_entropy
from grader.puzzle_d.strategies import Problem, chunk_sizes, problems

CASES = problems(max_rows=40).flatmap(
    lambda p: st.tuples(st.just(p), st.lists(chunk_sizes(p.rows), min_size=2, max_size=4, unique=True)))


@pytest.mark.criterion("D", "allows_dynamic_chunk_sizes")
@example(case=(Problem((3, 7), 16, 64, torch.bfloat16, True, 0.25, 4.0, seed=10), [1, 4, 21, None]))
@example(case=(Problem((17,), 8, 33, torch.float32, False, 0.0, 1.0, seed=11), [5, 16, 20]))
@given(case=CASES)
def test_any_chunk_size_gives_the_same_result(parity, criterion_name, device, case):
    """Per chunk size: forward_function sees chunks of at most that many rows, and the result keeps the
    precision rule against the one float64 truth (so the results agree with each other within it)."""
    problem, sizes = case
    X, linear, labels = problem.build(device)
    for chunk_size in sizes:
        log = parity(repr(problem), X, linear, labels, cross_entropy(labels), chunk_size,
                    1.0).log
        if chunk_size is None:
            continue
        assert max(log.rows) <= chunk_size, (
            f"{criterion_name}: chunk_size={chunk_size} but forward_function received chunks of "
            f"{sorted(set(log.rows))} rows; inputs: {problem!r}")
        assert sum(log.rows) >= problem.rows and len(log.rows) >= math.ceil(problem.rows / chunk_size), (
            f"{criterion_name}: chunk_size={chunk_size} over {problem.rows} rows, but forward_function "
            f"saw only {len(log.rows)} chunks of {log.rows} rows; inputs: {problem!r}")

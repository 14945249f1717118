"""D.remove_float32_upcast (a fault; the test passes when the submission is clear of it).

The grader's forward function upcasts the logits to float32 itself and records what it receives: the
linear layer's output must come out in the inputs' own dtype (a submission that runs the chunks under
bfloat16 autocast, or casts X or the weight down, hands the loss logits of lower precision), and the
result must keep the precision rule of the float32 and 16-bit full-logit computations.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from grader.puzzle_d.oracles import CallLog, cross_entropy
from grader.puzzle_d.strategies import Problem, problems_and_chunk_sizes, upstream_scales

CASES = problems_and_chunk_sizes()


@pytest.mark.criterion("D", "remove_float32_upcast")
@example(case=(Problem((4, 8), 32, 96, torch.float32, True, 0.25, 4.0, seed=9), 8), upstream=1.0)
@given(case=CASES, upstream=upstream_scales())
def test_logits_reach_the_loss_in_float32(judge, device, case, upstream):
    """The logits keep the inputs' precision up to the loss's float32 upcast, and the result its precision."""
    problem, chunk_size = case
    X, linear, labels = problem.build(device)
    try:
        judge("remove_float32_upcast", repr(problem), X, linear, labels, cross_entropy(labels), chunk_size, upstream)
        precision = ""
    except AssertionError as exc:  # reported after the dtype finding, which names the cause
        precision = str(exc)
    log = judge.last.log if judge.last is not None else CallLog()
    assert log.linear_out_dtypes and log.loss_in_dtypes, (  # an empty log would let every check below pass
        f"D.remove_float32_upcast: the submission never called the loss it was given on linear(x_chunk), so the "
        f"logits reaching it could not be checked; inputs: {problem!r}, chunk_size={chunk_size}\n{precision}")
    lowered = sorted({str(d) for d in log.linear_out_dtypes if torch.finfo(d).eps > torch.finfo(X.dtype).eps})
    assert not lowered, (f"D.remove_float32_upcast: linear(x_chunk) returned {', '.join(lowered)} logits for "
                         f"{X.dtype} inputs, so the loss received logits rounded below the inputs' precision "
                         f"before its float32 upcast; inputs: {problem!r}, chunk_size={chunk_size}\n{precision}")
    assert set(log.loss_in_dtypes) <= {torch.float32}, (
        f"D.remove_float32_upcast: the loss received {sorted(map(str, set(log.loss_in_dtypes)))} logits, not float32")
    assert not precision, precision

"""D.remove_float32_upcast (a fault; the test passes when the submission is clear of it).

The grader's forward function upcasts the logits to float32 itself and records what it receives (in the box): the
linear layer's output must come out in the inputs' own dtype (a submission that runs the chunks under bfloat16
autocast, or casts X or the weight down, hands the loss logits of lower precision). The fault is decided by that
evidence alone: a wrong value fails `correct`, not this.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from grader.box import watchdog
from grader.judging.outcomes import not_measured
from grader.puzzle_d.harness import run_candidate
from grader.puzzle_d.losses import cross_entropy
from grader.puzzle_d.strategies import Problem, problems_and_chunk_sizes, upstream_scales

CASES = problems_and_chunk_sizes()


@pytest.mark.criterion("D", "remove_float32_upcast")
def test_logits_reach_the_loss_in_float32(memory_efficient_linear, device, criterion_detail):
    """The logits keep the inputs' precision up to the loss's float32 upcast: decided by the dtypes the loss received,
    never by the values (a wrong result is `correct`'s to judge). An example whose call fails, or never reaches the
    loss, gives no evidence; the criterion is not measured when no example gave any."""
    seen: list[str] = []
    unseen: list[str] = []

    @example(case=(Problem((4, 8), 32, 96, torch.float32, True, 0.25, 4.0, seed=9), 8), upstream=1.0)
    @given(case=CASES, upstream=upstream_scales())
    def check(case, upstream):
        problem, chunk_size = case
        X, linear, labels = problem.build(device)
        where = f"inputs: {problem!r}, chunk_size={chunk_size}"
        try:
            got, _ = run_candidate(memory_efficient_linear, X, linear, labels, cross_entropy(labels), chunk_size,
                                   upstream, deadline=watchdog.deadline(device.type))
        except AssertionError as exc:
            unseen.append(f"the call failed before the logits reaching the loss could be seen ({str(exc)[:300]}); {where}")
            return
        log = got.log
        if not (log.linear_out_dtypes and log.loss_in_dtypes):
            unseen.append(f"the submission never called the loss it was given on linear(x_chunk); {where}")
            return
        seen.append(str(X.dtype).removeprefix("torch."))
        lowered = sorted({str(d) for d in log.linear_out_dtypes if torch.finfo(d).eps > torch.finfo(X.dtype).eps})
        assert not lowered, (f"D.remove_float32_upcast: linear(x_chunk) returned {', '.join(lowered)} logits for "
                             f"{X.dtype} inputs, so the loss received logits rounded below the inputs' precision "
                             f"before its float32 upcast; {where}")
        assert set(log.loss_in_dtypes) <= {torch.float32}, (
            f"D.remove_float32_upcast: the loss received {sorted(map(str, set(log.loss_in_dtypes)))} logits, not "
            f"float32; {where}")

    check()
    if not seen:
        not_measured(f"no example showed the logits reaching the loss: {unseen[0]}")
    criterion_detail(f"the loss received float32 logits, upcast from logits of the inputs' own dtype, in {len(seen)} "
                     f"problem(s) ({', '.join(sorted(set(seen)))})" + (f"; {len(unseen)} gave no evidence" if unseen else ""))

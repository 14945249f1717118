"""Puzzle D's gradient-direction rule (`hardcoded_gradients`) on hand-made readings: when it fails, passes or cannot
decide, what its failure names, and that the grader's own examples can decide it."""

from __future__ import annotations

import pytest
import torch

from grader.puzzle_d import standard
from grader.puzzle_d.losses import composed, cross_entropy
from grader.puzzle_d.oracles import exact_matmuls, full_logit
from grader.puzzle_d.test_losses import DIRECTION_EXAMPLES, distinct_truths

CE = standard.Direction("ce", to_loss=0.55, to_ce=1.0, calls=0, recorded=0)
LOSS = standard.Direction("loss", to_loss=1.0, to_ce=0.55, calls=4, recorded=2)
NEITHER = standard.Direction("neither", to_loss=0.31, to_ce=0.30, calls=4, recorded=2)


def _failure(readings: list[standard.Direction]) -> str:
    assert standard.undecided_direction(readings, []) is None
    verdict = standard.judge_directions(readings, [])
    assert not verdict.passed
    return verdict.message()


def test_gradients_following_cross_entropy_everywhere_fail_with_what_the_calls_show():
    never_called = _failure([CE] * standard.DIRECTION_AGREE)
    assert never_called.startswith("the gradients follow cross-entropy, not the loss handed in (it ignores "
                                   "forward_function: it never called it)")
    assert "the submission's gradients point along cross-entropy's (|cos| 1.000 to 1.000)" in never_called
    value_only = _failure([standard.Direction("ce", 0.55, 1.0, calls=3, recorded=0)] * standard.DIRECTION_AGREE)
    assert "(gradients written for cross-entropy: forward_function was called only with autograd off" in value_only
    recorded = _failure([standard.Direction("ce", 0.55, 1.0, calls=3, recorded=3)] * standard.DIRECTION_AGREE)
    assert "(forward_function ignored or gradients written for cross-entropy)" in recorded


def test_gradients_following_the_loss_pass_and_ties_do_not_count_against():
    verdict = standard.judge_directions([LOSS, NEITHER, LOSS], ["the call failed"])
    assert standard.undecided_direction([LOSS, NEITHER, LOSS], ["the call failed"]) is None
    assert verdict.passed
    assert verdict.summary.startswith("in 2 problem(s) without bias with a composed loss, the gradients followed the "
                                      "loss (|cos| with its own at least 1.000, with cross-entropy's at most 0.550)")
    assert verdict.summary.endswith("; 1 followed neither by 0.05; 1 gave no evidence")


@pytest.mark.parametrize("readings, reason", [
    ([CE] * standard.DIRECTION_AGREE + [LOSS], "the problems disagree"),
    ([CE] * (standard.DIRECTION_AGREE - 1) + [NEITHER], "fewer than the 3 that name the fault"),
    ([NEITHER], "followed neither the loss's own nor cross-entropy's"),
    ([], "every drawn loss's gradients pointed like cross-entropy's"),
])
def test_evidence_that_cannot_decide_is_not_measured(readings, reason):
    assert reason in standard.undecided_direction(readings, [])


def test_a_margin_within_rounding_follows_neither():
    assert standard.Direction("", to_loss=0.80, to_ce=0.80 + standard.DIRECTION_MARGIN / 2, calls=1,
                              recorded=1).follows is None


@pytest.mark.parametrize("case, recipe, upstream", DIRECTION_EXAMPLES)
def test_each_of_the_graders_own_examples_tells_the_loss_from_cross_entropy(case, recipe, upstream):
    """So a submission with the fault meets DIRECTION_AGREE problems that follow cross-entropy whatever Hypothesis
    draws: there are that many examples, each without bias and with truths apart over X and the weight and over X
    alone (a submission that gives the weight no gradient is judged on X)."""
    assert len(DIRECTION_EXAMPLES) >= standard.DIRECTION_AGREE
    problem, _ = case
    assert not problem.bias
    with exact_matmuls():
        X, linear, labels = problem.build(torch.device("cpu"))
        truths = full_logit(X, linear, labels, composed(recipe, labels), upstream, dtype=torch.float64).grads
        ces = full_logit(X, linear, labels, cross_entropy(labels), upstream, dtype=torch.float64).grads
    assert distinct_truths(truths, ces, ["X", "weight"]) is not None
    assert distinct_truths(truths, ces, ["X"]) is not None

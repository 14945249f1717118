"""D.show_ce_loss_works, D.show_other_functions_work and D.hardcoded_gradients: losses other than plain CE.

The composed loss is drawn anew for every example from elementwise maps and row reductions, so only
gradients that autograd derives from `forward_function` can match it. `hardcoded_gradients` is decided by the
direction of the gradients that come back for such losses on problems without bias: along cross-entropy's rather
than the loss's own on several problems, and on none along the loss's, means forward_function was ignored or the
gradients were written for cross-entropy (never by reading the source, and never by a value check failing).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from grader.box import watchdog
from grader.judging.outcomes import not_measured
from grader.puzzle_d import standard
from grader.puzzle_d.harness import run_candidate
from grader.puzzle_d.losses import Recipe, composed, cross_entropy, kl_to_reference, mse
from grader.puzzle_d.oracles import full_logit
from grader.puzzle_d.strategies import Problem, problems_and_chunk_sizes, recipes, upstream_scales

CASES = problems_and_chunk_sizes()
DENSE_CASES = problems_and_chunk_sizes(ignore=False)

CE_VARIANTS = {
    "plain": {},
    "label_smoothing": {"label_smoothing": 0.1},
    "z_loss": {"z_loss": 1e-2},
    "softcap": {"softcap": 3.0},
}


@pytest.mark.criterion("D", "show_ce_loss_works")
@pytest.mark.parametrize("variant", sorted(CE_VARIANTS))
@example(case=(Problem((4, 6), 16, 64, torch.float32, True, 0.25, 4.0, seed=5), 5), upstream=1.5)
@given(case=CASES, upstream=upstream_scales())
def test_cross_entropy_variant_matches(parity, device, variant, case, upstream):
    """Cross-entropy (mean over valid tokens, ignore_index), with label smoothing, z-loss or soft-capping."""
    problem, chunk_size = case
    X, linear, labels = problem.build(device)
    loss = cross_entropy(labels, **CE_VARIANTS[variant])
    parity(f"{variant} cross-entropy, {problem!r}", X, linear, labels, loss, chunk_size, upstream)


@pytest.mark.criterion("D", "show_other_functions_work")
@example(case=(Problem((5, 3), 8, 40, torch.float32, True, 0.0, 1.0, seed=6), 4), upstream=-2.0)
@given(case=DENSE_CASES, upstream=upstream_scales())
def test_mse_against_dense_targets(parity, device, case, upstream):
    """Mean squared error of the logits against (rows, vocab) targets."""
    problem, chunk_size = case
    X, linear, _ = problem.build(device)
    targets = problem.dense(device)
    parity(f"MSE, {problem!r}", X, linear, targets, mse(targets), chunk_size, upstream)


@pytest.mark.criterion("D", "show_other_functions_work")
@example(case=(Problem((11,), 12, 30, torch.bfloat16, False, 0.0, 4.0, seed=7), 3), upstream=0.5)
@given(case=DENSE_CASES, upstream=upstream_scales())
def test_kl_to_reference_distribution(parity, device, case, upstream):
    """KL from a reference distribution (given as log-probabilities per row) to softmax(logits)."""
    problem, chunk_size = case
    X, linear, _ = problem.build(device)
    ref = torch.log_softmax(2 * problem.dense(device), dim=-1)
    parity(f"KL, {problem!r}", X, linear, ref, kl_to_reference(ref), chunk_size, upstream)


@pytest.mark.criterion("D", "show_other_functions_work")
@given(case=CASES, recipe=recipes(), upstream=upstream_scales())
def test_randomly_composed_loss(parity, device, case, recipe, upstream):
    """A loss composed at random for each example from elementwise maps and row reductions."""
    problem, chunk_size = case
    X, linear, labels = problem.build(device)
    parity(f"composed loss {recipe}, {problem!r}", X, linear, labels,
          composed(recipe, labels), chunk_size, upstream)


# `hardcoded_gradients`' own examples: three problems without bias whose composed loss's gradients point well apart
# from cross-entropy's (tests/test_standard_d.py checks it), so that a submission with the fault meets
# `standard.DIRECTION_AGREE` of them whatever else Hypothesis draws; one of them 1 wide, as issue 34's problem was.
DIRECTION_EXAMPLES = (
    ((Problem((2, 9), 16, 48, torch.float32, False, 0.0, 1.0, seed=8), 4),
     Recipe(("sin",), (("mean_square", 1.0),), "identity"), 1.0),
    ((Problem((13,), 24, 100, torch.bfloat16, False, 0.25, 4.0, seed=9), 5),
     Recipe((), (("entropy", 1.0), ("at_label", -0.5)), "softplus"), -2.0),
    ((Problem((3, 4), 1, 15, torch.float16, False, 0.0, 4.0, seed=10), 1),
     Recipe(("softcap8",), (("entropy", 1.0),), "square"), 0.5),
)
BIAS_FREE_CASES = problems_and_chunk_sizes(bias=False)


def _direction(grads: dict[str, torch.Tensor | None], names: list[str]) -> torch.Tensor:
    return torch.cat([grads[n].detach().double().reshape(-1).cpu() for n in names])


def distinct_truths(truths: dict[str, torch.Tensor | None], ces: dict[str, torch.Tensor | None],
                    names: list[str]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A loss's and cross-entropy's float64 gradients over `names`, flat, when they are both non-zero and at most
    1 - `standard.DIRECTION_DISTINCT` alike; None when a gradient's direction cannot tell them apart."""
    truth, ce = _direction(truths, names), _direction(ces, names)
    if not truth.norm() or not ce.norm() or standard.direction_fit(truth, ce) > 1 - standard.DIRECTION_DISTINCT:
        return None
    return truth, ce


@pytest.mark.criterion("D", "hardcoded_gradients")
def test_gradients_follow_the_loss_not_cross_entropy(memory_efficient_linear, device, criterion_detail):
    """Handed randomly composed losses it cannot know, on problems without bias, do the submission's X and weight
    gradients point along each loss's own gradient or along cross-entropy's (|cos|, `standard.judge_directions`)?
    Failed when they follow cross-entropy's on `standard.DIRECTION_AGREE` problems or more and the loss's on none,
    the message saying whether the submission called forward_function at all and with autograd on; passed when they
    follow the loss's and never cross-entropy's; not measured otherwise (the problems disagree, too few follow
    cross-entropy, or none tells the two apart). Never decided by a value check failing (`correct` judges values)."""
    readings: list[standard.Direction] = []
    unseen: list[str] = []

    @given(case=BIAS_FREE_CASES, recipe=recipes(), upstream=upstream_scales())
    def check(case, recipe, upstream):
        problem, chunk_size = case
        X, linear, labels = problem.build(device)
        loss = composed(recipe, labels)
        truths = full_logit(X, linear, labels, loss, upstream, dtype=torch.float64).grads
        ces = full_logit(X, linear, labels, cross_entropy(labels), upstream, dtype=torch.float64).grads
        where = f"composed loss {recipe}, {problem!r}, chunk_size={chunk_size}, upstream={upstream:g}"
        if distinct_truths(truths, ces, ["X", "weight"]) is None:
            return  # this loss's gradients point like cross-entropy's here: no evidence either way
        try:
            got, _ = run_candidate(memory_efficient_linear, X, linear, labels, loss, chunk_size, upstream,
                                   deadline=watchdog.deadline(device.type))
        except AssertionError as exc:
            unseen.append(f"the call failed ({str(exc)[:300]}); {where}")
            return
        names = [n for n in ["X", "weight"] if isinstance(got.grads.get(n), torch.Tensor)
                 and got.grads[n].shape == truths[n].shape]  # a missing gradient is `correct`'s to judge
        g = _direction(got.grads, names) if "X" in names else None
        if g is None or not torch.isfinite(g).all() or not g.norm():
            unseen.append(f"no usable gradient of X came back; {where}")
            return
        pair = distinct_truths(truths, ces, names)
        if pair is None:
            return  # over the gradients that came back, the two truths point alike: no evidence either way
        truth, ce = pair
        readings.append(standard.Direction(where, standard.direction_fit(g, truth), standard.direction_fit(g, ce),
                                           len(got.log.rows), sum(got.log.logits_require_grad)))

    for case, recipe, upstream in DIRECTION_EXAMPLES:
        check = example(case=case, recipe=recipe, upstream=upstream)(check)
    check()
    reason = standard.undecided_direction(readings, unseen)
    if reason:
        not_measured(reason)
    verdict = standard.judge_directions(readings, unseen)
    criterion_detail(verdict.summary)
    assert verdict.passed, f"D.hardcoded_gradients: {verdict.message()}"

"""D.show_ce_loss_works, D.show_other_functions_work and D.hardcoded_gradients: losses other than plain CE.

The composed loss is drawn anew for every example from elementwise maps and row reductions, so only
gradients that autograd derives from `forward_function` can match it. `hardcoded_gradients` is decided by the
direction of the gradients that come back for such a loss: along cross-entropy's rather than the loss's own means
they were written for cross-entropy (never by reading the source, and never by a value check failing).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from grader.box import watchdog
from grader.judging.outcomes import not_measured
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


# How `hardcoded_gradients` is decided: by the gradients' direction (|cosine|, over X's and the weight's gradients
# together), which neither a wrong scale, nor an ignored upstream gradient, nor a missing bias gradient changes. A
# submission whose gradients for a composed loss point along cross-entropy's gradients (on the same problem) more
# than along the loss's own has written them for cross-entropy. Examples whose two float64 truths point within
# 1 - DISTINCT of each other cannot tell the two apart and are not used; MARGIN is far above what 16-bit rounding
# turns a gradient by (bfloat16's unit roundoff is 2**-8, about 4e-3) and far below DISTINCT.
DISTINCT = 0.2
MARGIN = 0.05


def _direction(grads: dict[str, torch.Tensor | None], names: list[str]) -> torch.Tensor:
    return torch.cat([grads[n].detach().double().reshape(-1).cpu() for n in names])


def _fit(a: torch.Tensor, b: torch.Tensor) -> float:
    """|cos(a, b)|, 0 when either is zero."""
    den = float(a.norm() * b.norm())
    return abs(float(a @ b)) / den if den else 0.0


@pytest.mark.criterion("D", "hardcoded_gradients")
def test_gradients_follow_the_loss_not_cross_entropy(memory_efficient_linear, device, criterion_detail):
    """Clear of the fault when, handed a randomly composed loss it cannot know, the submission's gradients follow that
    loss rather than cross-entropy; decided by that evidence alone, never by a value check failing (`correct` judges
    values). An example whose call fails gives no evidence; not measured when no example gave any."""
    seen: list[float] = []
    unseen: list[str] = []

    @example(case=(Problem((2, 9), 16, 48, torch.float32, False, 0.0, 1.0, seed=8), 4),
             recipe=Recipe(("sin",), (("mean_square", 1.0),), "identity"), upstream=1.0)
    @given(case=CASES, recipe=recipes(), upstream=upstream_scales())
    def check(case, recipe, upstream):
        problem, chunk_size = case
        X, linear, labels = problem.build(device)
        loss = composed(recipe, labels)
        truths = full_logit(X, linear, labels, loss, upstream, dtype=torch.float64).grads
        ces = full_logit(X, linear, labels, cross_entropy(labels), upstream, dtype=torch.float64).grads
        where = f"composed loss {recipe}, {problem!r}, chunk_size={chunk_size}, upstream={upstream:g}"
        names = ["X", "weight"]
        truth, ce = _direction(truths, names), _direction(ces, names)
        if not truth.norm() or not ce.norm() or _fit(truth, ce) > 1 - DISTINCT:
            return  # this loss's gradients point like cross-entropy's here: no evidence either way
        try:
            got, _ = run_candidate(memory_efficient_linear, X, linear, labels, loss, chunk_size, upstream,
                                   deadline=watchdog.deadline(device.type))
        except AssertionError as exc:
            unseen.append(f"the call failed ({str(exc)[:300]}); {where}")
            return
        names = [n for n in names if isinstance(got.grads.get(n), torch.Tensor)
                 and got.grads[n].shape == truths[n].shape]  # a missing gradient is `correct`'s to judge
        g = _direction(got.grads, names) if "X" in names else None
        if g is None or not torch.isfinite(g).all() or not g.norm():
            unseen.append(f"no usable gradient of X came back; {where}")
            return
        truth, ce = _direction(truths, names), _direction(ces, names)
        to_loss, to_ce = _fit(g, truth), _fit(g, ce)
        seen.append(to_loss)
        assert to_ce <= to_loss + MARGIN, (
            f"D.hardcoded_gradients: handed a loss that is not cross-entropy, the submission's gradients point along "
            f"cross-entropy's (|cos| {to_ce:.3f}) rather than the loss's own (|cos| {to_loss:.3f}): gradients written "
            f"for cross-entropy instead of derived from forward_function by autograd; {where}")

    check()
    if not seen:
        not_measured("no example showed the gradients of a loss other than cross-entropy: "
                     + (unseen[0] if unseen else "every drawn loss's gradients pointed like cross-entropy's"))
    criterion_detail(f"in {len(seen)} problem(s) with a composed loss, the gradients followed the loss (|cos| with its "
                     f"own at least {min(seen):.3f}) rather than cross-entropy"
                     + (f"; {len(unseen)} gave no evidence" if unseen else ""))

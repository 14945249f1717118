"""D.show_ce_loss_works, D.show_other_functions_work and D.hardcoded_gradients: losses other than plain CE.

The composed loss is drawn anew for every example from elementwise maps and row reductions, so only
gradients that autograd derives from `forward_function` can match it; derivatives written for
cross-entropy fail it, which is how `hardcoded_gradients` is decided (never by reading the source).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from grader.puzzle_d.oracles import Recipe, composed, cross_entropy, kl_to_reference, mse
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
def test_cross_entropy_variant_matches(judge, device, variant, case, upstream):
    """Cross-entropy (mean over valid tokens, ignore_index), with label smoothing, z-loss or soft-capping."""
    problem, chunk_size = case
    X, linear, labels = problem.build(device)
    loss = cross_entropy(labels, **CE_VARIANTS[variant])
    judge("show_ce_loss_works", f"{variant} cross-entropy, {problem!r}", X, linear, labels, loss, chunk_size, upstream)


@pytest.mark.criterion("D", "show_other_functions_work")
@example(case=(Problem((5, 3), 8, 40, torch.float32, True, 0.0, 1.0, seed=6), 4), upstream=-2.0)
@given(case=DENSE_CASES, upstream=upstream_scales())
def test_mse_against_dense_targets(judge, device, case, upstream):
    """Mean squared error of the logits against (rows, vocab) targets."""
    problem, chunk_size = case
    X, linear, _ = problem.build(device)
    targets = problem.dense(device)
    judge("show_other_functions_work", f"MSE, {problem!r}", X, linear, targets, mse(targets), chunk_size, upstream)


@pytest.mark.criterion("D", "show_other_functions_work")
@example(case=(Problem((11,), 12, 30, torch.bfloat16, False, 0.0, 4.0, seed=7), 3), upstream=0.5)
@given(case=DENSE_CASES, upstream=upstream_scales())
def test_kl_to_reference_distribution(judge, device, case, upstream):
    """KL from a reference distribution (given as log-probabilities per row) to softmax(logits)."""
    problem, chunk_size = case
    X, linear, _ = problem.build(device)
    ref = torch.log_softmax(2 * problem.dense(device), dim=-1)
    judge("show_other_functions_work", f"KL, {problem!r}", X, linear, ref, kl_to_reference(ref), chunk_size, upstream)


@pytest.mark.criterion("D", "show_other_functions_work")
@given(case=CASES, recipe=recipes(), upstream=upstream_scales())
def test_randomly_composed_loss(judge, device, case, recipe, upstream):
    """A loss composed at random for each example from elementwise maps and row reductions."""
    problem, chunk_size = case
    X, linear, labels = problem.build(device)
    judge("show_other_functions_work", f"composed loss {recipe}, {problem!r}", X, linear, labels,
          composed(recipe, labels), chunk_size, upstream)


@pytest.mark.criterion("D", "hardcoded_gradients")
@example(case=(Problem((2, 9), 16, 48, torch.float32, False, 0.0, 1.0, seed=8), 4),
         recipe=Recipe(("sin",), (("mean_square", 1.0),), "identity"), upstream=1.0)
@given(case=CASES, recipe=recipes(), upstream=upstream_scales())
def test_gradients_follow_a_random_loss(judge, device, case, recipe, upstream):
    """Passes when the gradients are autograd's: a composed loss that is not cross-entropy must match too."""
    problem, chunk_size = case
    X, linear, labels = problem.build(device)
    judge("hardcoded_gradients", f"composed loss {recipe}, {problem!r}", X, linear, labels,
          composed(recipe, labels), chunk_size, upstream)

"""The rubric is the notebook's marking code: its points, its order and its quirks; and every criterion
of every puzzle is decided by at least one test in grader/."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.scoring.rubric import PUZZLES, Outcome, score
from tests.verdicts import BROKEN, REPO, grade, statuses


def _outcomes(puzzle: str, status: str = "passed", **overrides: str | tuple[str, float]) -> dict[str, Outcome]:
    out = {}
    for c in PUZZLES[puzzle].criteria:
        given = overrides.get(c.name, status)
        out[c.name] = Outcome(*given) if isinstance(given, tuple) else Outcome(given)
    return out


def test_every_rubric_criterion_has_a_test(pytester):
    items, _ = pytester.inline_genitems(str(REPO / "grader"), "--rootdir", str(REPO), "-p", "no:cacheprovider")
    from grader.plugins.guards import REPORT_CRITERION  # decided by the guard around every test, not by a test

    marked = {tuple(item.get_closest_marker("criterion").args) for item in items}
    expected = {(p.letter, c.name) for p in PUZZLES.values() for c in p.criteria if c.name != REPORT_CRITERION}
    assert expected - marked == set(), f"rubric criteria without a test: {sorted(expected - marked)}"
    assert marked - expected == set(), f"tests for criteria the rubric lacks: {sorted(marked - expected)}"


@pytest.mark.parametrize("puzzle,max_points", [("A", 14), ("C", 9), ("D", 10)])
def test_full_marks_equal_the_notebook_maximum(puzzle, max_points):
    s = score(PUZZLES[puzzle], _outcomes(puzzle, speedup=("passed", 1.2)))
    assert (s.points, s.max_points, s.correct, s.provisional) == (max_points, max_points, True, False)


SPEEDUP_STEPS = [(0.9, -3), (1.0, -3), (1.01, 0), (1.05, 1), (1.08, 1), (1.10, 3), (1.149, 3), (1.15, 5)]


@pytest.mark.parametrize("ratio,points", SPEEDUP_STEPS)
def test_a_speedup_steps(ratio, points):
    s = score(PUZZLES["A"], _outcomes("A", speedup=("passed" if points > 0 else "failed", ratio)))
    assert s.per_criterion.get("speedup", 0) == points


@pytest.mark.parametrize("ratio,points", SPEEDUP_STEPS)
def test_a_speedup_verdict_follows_the_ladder(ratio, points):
    """The speed test passes exactly when the rubric pays for the ratio (a 1.08x kernel earns +1: passed),
    and its detail names the step reached; the thresholds are read from the rubric, not repeated."""
    from grader.scoring.rubric import value_points

    got, said = value_points(PUZZLES["A"], "speedup", ratio)
    assert got == points
    assert ("no step" in said) == (points == 0) and ">= 1.15: +2" in said


def test_a_torch_compile_and_dtypes_cost_a_point_each_when_missing():
    s = score(PUZZLES["A"], _outcomes("A", kernel_works_in_torch_compile="failed", tested_in_f16_and_bf16="failed",
                                      speedup=("passed", 1.2)))
    assert s.points == 14 - 2 - 2


def test_a_failed_gate_scores_zero():
    s = score(PUZZLES["A"], _outcomes("A", correct="failed", speedup=("passed", 1.2)))
    assert (s.points, s.correct) == (0, False)


def test_not_measured_makes_the_score_provisional_and_adds_nothing():
    s = score(PUZZLES["A"], _outcomes("A", speedup="not_measured", custom_asm_works="not_measured"))
    assert s.provisional and s.points == 14 - 5 - 3


@st.composite
def _any_outcomes(draw: st.DrawFn) -> tuple[str, dict[str, Outcome]]:
    letter = draw(st.sampled_from(sorted(PUZZLES)))
    status = st.sampled_from(["passed", "failed", "not_measured"])
    return letter, {c.name: Outcome(draw(status), draw(st.floats(0.5, 2.0)) if c.kind == "value" else None)
                    for c in PUZZLES[letter].criteria}


@given(_any_outcomes())
def test_criterion_points_add_up_to_the_score(graded):
    """Each criterion's points on the scorecard are what it contributed: after a rule that sets the score
    (D's `E_score = 0`), the points that rule wiped are shown nowhere."""
    letter, outcomes = graded
    s = score(PUZZLES[letter], outcomes)
    assert sum(s.per_criterion.values()) == s.points, (s.per_criterion, s.points, s.notes)


def test_d_upcast_removal_wipes_earlier_points_only():
    s = score(PUZZLES["D"], _outcomes("D", remove_float32_upcast="failed"))
    assert s.points == 10 - 2  # VRAM's 2 points were before the E_score = 0 line
    assert "VRAM_50_percent_reduction" not in s.per_criterion and s.per_criterion["remove_float32_upcast"] == 0


def test_d_llama_mismatch_wipes_all_but_grpo():
    s = score(PUZZLES["D"], _outcomes("D", llama_1B_training_loss_matches="failed"))
    assert s.points == 4


def test_d_hardcoded_gradients_wipe_the_first_four():
    s = score(PUZZLES["D"], _outcomes("D", hardcoded_gradients="failed"))
    assert s.points == 1 + 1 + 4


def test_c_mlp_point_survives_the_recompilation_penalty():
    s = score(PUZZLES["C"], _outcomes("C", excessive_recompilation="failed"))
    # flex+dyn 3, part A 1, attention -3, mlp -3 + 1, autotune -2
    assert s.points == 3 + 1 - 3 - 3 + 1 - 2


def test_c_bnb_chain_is_an_elif():
    s = score(PUZZLES["C"], _outcomes("C", use_part_A="failed"))
    assert s.per_criterion.get("torch_compile_BnB") == 1 and "use_part_A" not in s.per_criterion
    s = score(PUZZLES["C"], _outcomes("C", no_torch_compile_BnB="failed"))
    assert s.per_criterion.get("no_torch_compile_BnB") == -2 and "use_part_A" not in s.per_criterion


def test_c_missing_layernorms_cost_three():
    s = score(PUZZLES["C"], _outcomes("C", layernorms_compiled="failed", loss_compiled="failed"))
    assert s.points == 9 - 3 - 1


def test_not_attempted_puzzle_scores_nothing():
    s = score(PUZZLES["D"], _outcomes("D", status="not_attempted"))
    assert (s.attempted, s.points) == (False, 0)


@pytest.mark.slow
def test_xdist_run_scores_like_one_process(pytester):
    """`pytest grader/ -n 2`: only the workers collect, yet the controller's scorecard has every verdict."""
    card = grade(pytester, BROKEN / "d_logits_saved_for_backward.py", puzzles=("D",),
                 criteria=("D.correct", "D.VRAM_50_percent_reduction"), extra=("-n", "2"))
    assert statuses(card, "D") == {"correct": "passed", "VRAM_50_percent_reduction": "failed"}, card["output"][-3000:]
    assert card["exit_code"] == 1 and "grader scorecard" in card["output"]


@pytest.mark.slow
def test_no_speed_verdict_under_xdist(pytester):
    """Side-by-side tests share the device: speed is not measured under -n, and the scorecard says why."""
    card = grade(pytester, "solutions", puzzles=("A",), criteria=("A.speedup",), extra=("-n", "2"))
    speedup = card["puzzles"]["A"]["criteria"]["speedup"]
    assert speedup["status"] == "not_measured" and "pytest-xdist" in speedup["detail"], speedup


def test_the_score_names_the_gates_that_failed_and_those_not_settled():
    """The one place that works out gates: the exit status and the scorecard's lines read these lists."""
    c = PUZZLES["C"]
    outcomes = {name: Outcome("passed") for name in (x.name for x in c.criteria)}
    outcomes["no_graph_breaks"] = Outcome("failed")
    del outcomes["correct"]
    s = score(c, outcomes)
    assert (s.correct, s.points, s.gates_failed, s.gates_unsettled) == (False, 0, ["no_graph_breaks"], ["correct"])
    outcomes.update(correct=Outcome("passed"), no_graph_breaks=Outcome("passed"))
    s = score(c, outcomes)
    assert s.correct and s.gates_failed == [] and s.gates_unsettled == []

"""Long grading steps announce themselves while pytest captures the test's output, in a quiet run too (a log cut
short must say where it was); `-qq` silences them. Every puzzle's long steps do: A's and D's too, in a real grading."""

from __future__ import annotations

import pytest

from tests.verdicts import grade, run_with_plugin

LONG_STEP = '''
import pytest


def test_long(progress):
    print("captured, not shown")
    with progress.step("X: a long step", "what it covers"):
        pass


def test_raising(progress):
    with pytest.raises(ValueError):
        with progress.step("X: a failing step"):
            raise ValueError
'''


@pytest.fixture
def run(pytester, monkeypatch):
    """A grading run of LONG_STEP (it names a submission: the `progress` fixture exists in no other), in this
    process (--no-isolation), plus the arguments given."""
    pytester.makepyfile(test_long=LONG_STEP)
    grading = ("--submission", "solutions", "--no-isolation", "--box", "none")
    return lambda *args: run_with_plugin(pytester, monkeypatch, *grading, *args)


def test_steps_are_announced_and_timed_despite_capture(run):
    result = run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["[[]grader[]] X: a long step (what it covers) ...",
                                 "[[]grader[]] X: a long step: done in *s",
                                 "[[]grader[]] X: a failing step ...",
                                 "[[]grader[]] X: a failing step: stopped after * s (ValueError)"])
    result.stdout.no_fnmatch_line("*captured, not shown*")


def test_quiet_run_still_prints_progress(run):
    result = run("-q")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["[[]grader[]] X: a long step (what it covers) ...",
                                 "[[]grader[]] X: a long step: done in *s"])


def test_very_quiet_run_prints_no_progress(run):
    result = run("-qq")
    assert result.ret == 0  # -qq prints no summary line for assert_outcomes to read
    result.stdout.no_fnmatch_line("*[[]grader[]]*")


@pytest.mark.slow
def test_a_and_d_steps_announce_themselves_in_a_grading(pytester):
    """A's correctness property and D's cross-entropy problems (several seconds each on a CPU, over a minute with the
    default profile), graded on the reference: each prints its line, then its duration."""
    card = grade(pytester, "solutions", puzzles=("A", "D"), criteria=("A.correct", "D.correct"),
                 extra=("-k", "every_element or cross_entropy_matches"))
    out = card["output"]
    for step in ("A: correct, every element of random weights (Hypothesis: 8 weights of up to 262144 elements",
                 "D: correct, test_cross_entropy_matches_full_logits (problems against the float64 truth: 8 drawn"):
        assert f"[grader] {step}" in out, out[-3000:]
        assert f"[grader] {step.split(' (')[0]}: done in " in out, out[-3000:]
    assert card["puzzles"]["A"]["criteria"]["correct"]["status"] == "passed"
    assert card["puzzles"]["D"]["criteria"]["correct"]["status"] == "passed"

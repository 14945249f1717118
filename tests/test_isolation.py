"""`pytest grader/ --submission X` ends, within its limits, with a complete scorecard naming the fault, whatever
the submission does: hang (in Python or in C), crash, exit, recurse, exhaust memory. Each submission's puzzle A
faults; its puzzle D is correct and must still be graded in the same run (grader/plugins/isolation.py, grader/box/).
A submission that hangs on every call is stopped by each call's deadline, not by the per-test limit, and its
whole run ends with its scorecard within six minutes (grader/box/watchdog.py)."""

from __future__ import annotations

import time

import pytest

from tests.verdicts import BROKEN, grade

TEST_TIMEOUT_S = 20  # --timeout for these runs: above one quick test's time, so only a hang reaches it
# (submission, words the A.correct detail must contain); a hang waits out two tests' --timeout
WAITS = pytest.mark.waits(2 * TEST_TIMEOUT_S)
FAULTS = [
    pytest.param("x_hangs", f"exceeded {TEST_TIMEOUT_S} s", marks=WAITS, id="x_hangs"),
    pytest.param("x_hangs_in_c", f"exceeded {TEST_TIMEOUT_S} s", marks=WAITS, id="x_hangs_in_c"),
    pytest.param("x_segfaults", "Segmentation fault", id="x_segfaults"),
    pytest.param("x_exits", "exited without a result", id="x_exits"),
    pytest.param("x_recurses", "RecursionError", id="x_recurses"),
    pytest.param("x_eats_memory", "MemoryError", id="x_eats_memory"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,words", FAULTS)
def test_a_fault_fails_its_criterion_and_the_run_still_ends_with_a_scorecard(pytester, name, words):
    started = time.perf_counter()
    card = grade(pytester, BROKEN / f"{name}.py", puzzles=("A", "D"), criteria=("A.correct", "D.correct"),
                 extra=("-k", "linear4bit or autograd_function", "--timeout", str(TEST_TIMEOUT_S),
                        "--memory-limit-gb", "4"), isolated=True)
    elapsed = time.perf_counter() - started
    a, d = card["puzzles"]["A"], card["puzzles"]["D"]
    assert a["criteria"]["correct"]["status"] == "failed", a
    assert words in a["criteria"]["correct"]["detail"], a["criteria"]["correct"]["detail"]
    assert a["score"] == 0 and card["exit_code"] != 0
    assert d["criteria"]["correct"]["status"] == "passed", (d, card["output"][-3000:])
    # Two A tests at most reach the fault (the puzzle stops after CRASHES_PER_PUZZLE lost workers).
    assert elapsed < 2 * TEST_TIMEOUT_S + 150, f"{name}: graded in {elapsed:.0f} s"


@pytest.mark.slow
def test_a_puzzle_past_its_time_limit_stops_with_the_reason(pytester):
    card = grade(pytester, "solutions", puzzles=("A",), criteria=("A.correct",),
                 extra=("--puzzle-timeout", "0"), isolated=True)
    detail = card["puzzles"]["A"]["criteria"]["correct"]["detail"]
    assert "exceeded its time limit of 0 s" in detail and card["exit_code"] != 0, detail


@pytest.mark.slow
def test_a_wrong_kernel_is_graded_within_three_minutes_with_its_shrunk_example(pytester):
    """One element wrong in 16,384 (the second-level absmax of the next group): the default profile finds it,
    shrinks it within the grader's shrink budget, and prints the example with its reproduce line."""
    started = time.perf_counter()
    card = grade(pytester, BROKEN / "a_late_second_level.py", puzzles=("A",), criteria=("A.correct",),
                 isolated=True, profile="dev", shrink_seconds=None)
    elapsed = time.perf_counter() - started
    detail = card["puzzles"]["A"]["criteria"]["correct"]["detail"]
    assert "elements are not what any correct float32 evaluation rounds to" in detail, detail
    assert "first at flat index 16383 (block 255)" in detail, detail
    assert "WeightCase(shape=" in detail and "@reproduce_failure" in detail, detail  # Hypothesis' notes
    assert elapsed < 180, f"graded in {elapsed:.0f} s"


@pytest.mark.slow
@pytest.mark.waits(180)  # two 90 s call deadlines
def test_a_submission_hanging_on_every_call_gets_its_scorecard_within_six_minutes(pytester):
    """Every A criterion, the default per-test limit (900 s): each call's deadline (90 s on a CPU) stops the first two
    hangs, and the puzzle's remaining tests fail at once. The hang is told once, where it happened, naming the line
    the submission hung on; every other criterion points there (issue 34: a crash told once)."""
    started = time.perf_counter()
    card = grade(pytester, BROKEN / "x_hangs.py", puzzles=("A",), isolated=True)
    elapsed = time.perf_counter() - started
    a = card["puzzles"]["A"]
    tellers = [name for name, c in a["criteria"].items() if "did not return within 90 s" in c["detail"]]
    assert tellers, {name: c["detail"][:300] for name, c in a["criteria"].items()}
    told = a["criteria"][tellers[0]]["detail"]
    assert "x_hangs.py" in told, f"the verdict names the line the submission hung on: {told}"
    detail = a["criteria"]["correct"]["detail"]
    assert a["criteria"]["correct"]["status"] == "failed", detail
    assert "correct" in tellers or f"(see A.{tellers[0]})" in detail, detail
    assert a["score"] == 0 and card["exit_code"] != 0
    assert elapsed < 360, f"graded in {elapsed:.0f} s"

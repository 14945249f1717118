"""The pure pieces between the tests and the scorecard: folding test results into a criterion's outcome, merging
recorded figures, the reproduce command, the scorecard's lines, and the batch's expansion of submissions."""

from __future__ import annotations

from pathlib import Path

from grader.batch.driver import display_names, expand
from grader.scoring.results import GraderSession, TestResult, merge_data, reproduce_command
from grader.scoring.rubric import PUZZLES, Outcome, score
from grader.scoring.scorecard import PuzzleCard, Scorecard


def _session(*results: TestResult) -> GraderSession:
    s = GraderSession("sub.py", 1, ["A"], [], {}, grading=True)
    s.results[("A", "correct")] = list(results)
    return s


def test_a_criterion_folds_any_failure_first_then_not_attempted_then_not_measured():
    passed = TestResult("t::a", "passed", details=["all good"], value=2.0)
    unmeasured = TestResult("t::b", "not_measured", message="needs a GPU")
    failed = TestResult("t::c", "failed", message="wrong", details=["on (64,)"])
    assert _session(passed, unmeasured, failed).outcome("A", "correct") == Outcome("failed", 2.0, "on (64,)\nwrong")
    assert _session(passed, unmeasured).outcome("A", "correct").status == "not_measured"
    assert _session(unmeasured, TestResult("t::d", "not_attempted", message="no entry")).outcome(
        "A", "correct").status == "not_attempted"
    assert _session(passed, passed).outcome("A", "correct") == Outcome("passed", 2.0, "all good")
    assert _session().outcome("A", "correct") == Outcome("not_measured", detail="no test ran for this criterion")


def test_recorded_figures_merge_key_by_key_the_later_part_winning():
    assert merge_data([{"a": 1, "p": {"x": 1, "y": 2}}, {"a": 3, "p": {"y": 5}}, {"b": [1]}]) == {
        "a": 3, "p": {"x": 1, "y": 5}, "b": [1]}


def test_the_reproduce_command_keeps_what_decides_the_run_and_drops_where_results_go():
    args = ["grader/", "--submission", "my sol.py", "--score-json", "s.json", "--report-html=r.html", "-k", "fp16",
            "--grader-seed", "9", "--hypothesis-profile", "dev", "--criterion", "A.correct"]
    assert reproduce_command(args, 42, "ci") == ("pytest grader/ --submission 'my sol.py' -k fp16 --criterion A.correct "
                                                 "--grader-seed 42 --hypothesis-profile ci")


def _card(letter: str, **statuses: str) -> PuzzleCard:
    outcomes = {c.name: Outcome(statuses.get(c.name, "passed")) for c in PUZZLES[letter].criteria}
    return PuzzleCard(letter, score(PUZZLES[letter], outcomes), outcomes)


def test_the_scorecard_says_why_a_puzzle_scores_nothing():
    card = Scorecard("sub.py", 1, "ci", {}, {"D": _card("D", correct="failed"), "C": _card("C", correct="not_measured")},
                     "pytest grader/")
    text = "\n".join(card.lines())
    assert "(gate failed: correct; the puzzle scores 0)" in text
    assert "INCOMPLETE, provisional (gate not decided here: correct not run or not measured; no score)" in text


def test_a_directory_of_submissions_expands_to_its_modules_and_packages(tmp_path: Path):
    for name in ("b.py", "a.py", "_helper.py", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "data").mkdir()
    assert expand([str(tmp_path), "some.module"]) == [str(tmp_path / n) for n in ("a.py", "b.py", "pkg")] + ["some.module"]
    assert display_names(["x/sol.py", "y/sol.py", "other"]) == ["x_sol", "y_sol", "other"]

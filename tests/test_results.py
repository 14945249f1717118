"""The pure pieces between the tests and the scorecard: folding test results into a criterion's outcome, merging
recorded figures, the reproduce command, the scorecard's lines, and the batch's expansion of submissions."""

from __future__ import annotations

import json
from pathlib import Path

from grader.batch.driver import display_names, expand
from grader.judging.outcomes import GRADER
from grader.scoring.results import (ALSO, CRITERION, DETAIL, NOTES, STOP, VALUE, GraderSession, PhaseReport, TestResult,
                                    merge_data, reproduce_command)
from grader.scoring.rubric import PUZZLES, Outcome, score
from grader.scoring.scorecard import MIN_DETAIL, WIDE, PuzzleCard, Scorecard, cut_detail


def _session(*results: TestResult) -> GraderSession:
    s = GraderSession("sub.py", 1, ["A"], [], {})
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


def _phase(nodeid: str, when: str, outcome: str, *props: tuple[str, str], **text: str) -> PhaseReport:
    return PhaseReport(nodeid, when, outcome, [(CRITERION, "A.correct"), *props], **text)


def test_the_session_folds_plain_phase_reports_into_verdicts():
    s = GraderSession("sub.py", 1, ["A"], [], {})
    s.record(_phase("t::ok", "setup", "passed"))  # a phase that passed before the call says nothing
    s.record(_phase("t::ok", "call", "passed", (DETAIL, "fine"), (VALUE, 2.0)))
    s.record(_phase("t::fixture", "setup", "failed", (NOTES, "Falsifying example: x=1"),
                    failure="AssertionError: wrong\nassert 1 == 2\nFalsifying example: x=1"))
    s.record(_phase("t::gpu", "call", "skipped", skip_reason="Skipped: needs a GPU"))
    stop = {"status": "not_measured", "reason": "out of memory", "cause": GRADER}
    s.record(_phase("t::oom", "call", "skipped", (STOP, json.dumps(stop)), skip_reason="Skipped: not measured: ..."))
    s.record(_phase("t::ok", "teardown", "failed", (ALSO, json.dumps(["A.global_state_untouched", "failed", "tamper"])),
                    failure="Failed: tampered"))
    s.record(PhaseReport("t::foreign", "call", "failed", [], failure="not a criterion's test"))
    assert [(r.nodeid, r.status, r.message, r.cause) for r in s.results[("A", "correct")]] == [
        ("t::ok", "passed", "", "device"),
        ("t::fixture", "failed", "error in setup: AssertionError: wrong\nFalsifying example: x=1", "device"),
        ("t::gpu", "not_measured", "skipped: needs a GPU", "device"),
        ("t::oom", "not_measured", "out of memory", GRADER),
        ("t::ok", "failed", "error in teardown: Failed: tampered", "device")]
    assert s.results[("A", "correct")][0].value is None, "a failed teardown takes the test's value back"
    assert s.outcome("A", "global_state_untouched") == Outcome("failed", detail="tamper")
    assert s.collected == {("A", "correct")}


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


def _detailed(letter: str, **details: tuple[str, str]) -> Scorecard:
    """A card whose criteria have the given (status, detail); the others passed with no detail."""
    outcomes = {}
    for c in PUZZLES[letter].criteria:
        status, detail = details.get(c.name, ("passed", ""))
        outcomes[c.name] = Outcome(status, detail=detail)
    return Scorecard("sub.py", 1, "ci", {}, {letter: PuzzleCard(letter, score(PUZZLES[letter], outcomes), outcomes)},
                     "pytest grader/")


ROW_HEAD = 49  # "  FAIL  +3  " and the criterion's name in 36 columns, then a space: where a row's detail starts


def _row(lines: list[str], name: str) -> str:
    return next(line for line in lines if f" {name} " in line)


def test_a_detail_too_long_for_its_row_is_cut_at_a_word_and_says_where_the_rest_is():
    words = " ".join(f"word{i:03d}" for i in range(60))  # 479 characters, no word cut anywhere
    card = _detailed("A", correct=("failed", words), single_triton_kernel=("passed", words),
                     speedup=("not_measured", "short enough"))
    for width, full_text_at in ((120, "score.json"), (200, None), (40, "score.json and report.html")):
        lines = card.lines(width, full_text_at=full_text_at)
        correct, kernel = _row(lines, "correct"), _row(lines, "single_triton_kernel")
        longest = max(width, ROW_HEAD + MIN_DETAIL)  # a narrow terminal still gets MIN_DETAIL of a detail
        assert len(correct) <= longest and len(kernel) <= longest
        assert correct.endswith(" [... see 'why criteria failed' below]"), correct
        assert kernel.endswith(f" [... full text in {full_text_at}]" if full_text_at else
                               " [... full text: --score-json PATH]"), kernel
        kept = kernel.split("single_triton_kernel", 1)[1].split(" [...")[0].strip()
        assert kept and words.startswith(kept) and words[len(kept)] == " ", f"cut inside a word: {kept!r}"
        assert _row(lines, "speedup").endswith(" short enough")
    assert "\n".join(card.failure_details()).count(words) == 1  # the failed one's whole text, below


def test_a_detail_of_several_lines_says_where_its_other_lines_are():
    card = _detailed("D", correct=("passed", "first line\nsecond line"), hardcoded_gradients=("failed", "why\nhow"))
    lines = card.lines(WIDE, full_text_at="score.json")
    assert _row(lines, "correct").endswith("first line [... full text in score.json]")
    assert _row(lines, "hardcoded_gradients").endswith("why [... see 'why criteria failed' below]")
    assert "second line" not in "\n".join(lines)


def test_a_word_longer_than_the_row_is_cut_inside_it_with_the_marker():
    path = "/very/long/" + "x" * 300 + ".py"
    assert cut_detail(path, 100, "[...]") == path[:94] + " [...]"
    assert cut_detail("fits", 100, "[...]") == "fits"
    assert cut_detail("", 100, "[...]") == ""


def test_a_directory_of_submissions_expands_to_its_modules_and_packages(tmp_path: Path):
    for name in ("b.py", "a.py", "_helper.py", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "data").mkdir()
    assert expand([str(tmp_path), "some.module"]) == [str(tmp_path / n) for n in ("a.py", "b.py", "pkg")] + ["some.module"]
    assert display_names(["x/sol.py", "y/sol.py", "other"]) == ["x_sol", "y_sol", "other"]

"""The run's state and result model: what each test decided about its criterion, folded into outcomes, scored
and made into a scorecard (with the command that reproduces the run).

A test's verdict travels from the pytest-xdist worker to the controller in the report's `user_properties`, as
JSON-safe values under the keys below; nothing is parsed back from messages. Nothing here knows pytest: the grading
plugin hands each report over as a `PhaseReport`, plain data.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any, Sequence

from grader.judging.outcomes import DEVICE, GRADER
from grader.scoring.rubric import PUZZLES, Outcome, score
from grader.scoring.scorecard import PuzzleCard, Scorecard

CRITERION = "grader_criterion"  # "A.correct": the criterion the test decides
PUZZLE = "grader_puzzle"  # "A" (JUnit XML shows it beside the criterion)
DETAIL = "grader_detail"  # a measured figure or explanation for the scorecard
VALUE = "grader_value"  # the criterion's measured value (A's speedup)
NOTES = "grader_notes"  # a failure's PEP 678 notes (Hypothesis' shrunk example, its reproduce line)
STOP = "grader_stop"  # {"status": "not_measured" | "not_attempted", "reason": ..., "cause": ...}: grader.judging.outcomes
ALSO = "grader_also"  # [criterion, status, detail]: a criterion a test decides besides its own (grader.plugins.guards)
DATA = "grader_data"  # a JSON object of figures the HTML report draws (grader.report.figures), one per test
FLAKY_LINE_CHARS = 400  # of each failure Hypothesis saw on a replayed input, quoted in the verdict
# Left out of the reproduce command: the options that only say where results go, and the seed and profile
# (written at its end, explicit).
_NOT_REPEATED = ("--score-json", "--report-html", "--junitxml", "--junit-xml", "--benchmark-json", "--basetemp",
                 "--grader-seed", "--hypothesis-profile")


@dataclass
class TestResult:
    """One test's verdict on its criterion."""

    __test__ = False  # not a pytest test class

    nodeid: str
    status: str  # passed | failed | not_measured | not_attempted
    message: str = ""
    details: list[str] = field(default_factory=list)
    value: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    cause: str = DEVICE  # of a not_measured status: this machine cannot decide it, or the grader itself failed


@dataclass(frozen=True)
class PhaseReport:
    """One phase of a test as the result model reads it (`grader.plugins.grading.phase_report` makes it from pytest's
    report)."""

    nodeid: str
    when: str  # setup | call | teardown | ??? (pytest-xdist's report for a test whose worker was lost)
    outcome: str  # passed | failed | skipped
    user_properties: list[tuple[str, Any]]
    failure: str = ""  # a failure's message as pytest shows it (the exception's own text, not its traceback)
    skip_reason: str = ""  # a skip's reason as pytest gives it ("Skipped: ...")


@dataclass(eq=False)
class GraderSession:
    """A grading run's state (made only in a grading run): the options, and every criterion's test results as they
    arrive."""

    submission_spec: str
    seed: int
    puzzles: list[str]
    criteria: list[str]
    min_scores: dict[str, int]
    results: dict[tuple[str, str], list[TestResult]] = field(default_factory=dict)
    collected: set[tuple[str, str]] = field(default_factory=set)
    scorecard: Scorecard | None = None
    report_error: str | None = None  # why --report-html could not be written (the run then fails)
    box: dict[str, str] | None = None  # the sandbox the submission runs in, as the scorecard's `box` entry
    # GPU memory the grading held, in bytes (the largest seen of each): "judge" (its own work after any one-off),
    # "box" (the submission's process), "one_off" (work done once per key, as C's oracle, when this run did it)
    resources: dict[str, int] = field(default_factory=dict)

    def record_peak(self, name: str, nbytes: int | None) -> None:
        """Keep the largest `nbytes` seen under `name` (None: nothing measured)."""
        if nbytes is not None:
            self.resources[name] = max(self.resources.get(name, 0), int(nbytes))

    def record(self, report: PhaseReport) -> None:
        """Record a criterion test's verdict (on the xdist controller, from the workers' reports)."""
        props = dict(report.user_properties)
        crit = props.get(CRITERION)
        if crit is None:
            return
        letter, name = crit.split(".", 1)
        self.collected.add((letter, name))  # under xdist only the workers collect; the controller learns it here
        failed, skipped = report.outcome == "failed", report.outcome == "skipped"
        if report.when == "teardown":
            self._record_also(report)
            if failed:  # a test whose teardown failed (tampering, say) gives its criterion no value
                for results in self.results.values():
                    for r in results:
                        if r.nodeid == report.nodeid:
                            r.value = None
        if report.when != "call" and not failed and not skipped:
            return
        status, message, cause = _status_of(report)
        details = [v for k, v in report.user_properties if k == DETAIL]
        value = next((v for k, v in report.user_properties if k == VALUE), None)
        data = merge_data([json.loads(v) for k, v in report.user_properties if k == DATA])
        self.results.setdefault((letter, name), []).append(
            TestResult(report.nodeid, status, message, details, value, data, cause))

    def _record_also(self, report: PhaseReport) -> None:
        for key, value in report.user_properties:
            if key == ALSO:
                crit, status, detail = json.loads(value)
                letter, name = crit.split(".", 1)
                result = TestResult(report.nodeid, status, detail if status == "failed" else "",
                                    [] if status == "failed" else [detail])
                self.results.setdefault((letter, name), []).append(result)

    def outcome(self, puzzle: str, criterion: str) -> Outcome:
        """Fold a criterion's test results: any failure fails it; not measured beats passed."""
        results = self.results.get((puzzle, criterion), [])
        if not results:
            return Outcome("not_measured", detail="no test ran for this criterion")
        for status in ("failed", "not_attempted", "not_measured"):
            hits = [r for r in results if r.status == status]
            if hits:
                return Outcome(status, _first_value(results), _join_details(hits),
                               grader_failure=any(r.cause == GRADER for r in hits))
        return Outcome("passed", _first_value(results), _join_details(results))

    def data(self, puzzle: str, criterion: str) -> dict[str, Any]:
        """The figures a criterion's tests recorded, merged (`merge_data`) in the order the tests reported."""
        return merge_data([r.data for r in self.results.get((puzzle, criterion), [])])


def merge_data(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge recorded figures: objects key by key, recursively; any other value is taken from the later part."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge_data([merged[key], value])
            else:
                merged[key] = value
    return merged


def _first_value(results: list[TestResult]) -> float | None:
    return next((r.value for r in results if r.value is not None), None)


def _join_details(results: list[TestResult]) -> str:
    parts = []
    for r in results:
        text = "\n".join([*r.details, r.message]).strip() if r.status == "failed" else "\n".join(
            r.details or ([r.message] if r.message else []))
        if text and text not in parts:
            parts.append(text)
    return "\n".join(parts)


def _status_of(report: PhaseReport) -> tuple[str, str, str]:
    """(status, message, cause) of a criterion test's report; cause as `grader.judging.outcomes` names it."""
    if report.outcome == "passed":
        return "passed", "", DEVICE
    if report.outcome == "skipped":
        stop = next((json.loads(v) for k, v in report.user_properties if k == STOP), None)
        if stop is not None:
            return stop["status"], stop["reason"], stop.get("cause", DEVICE)
        return "not_measured", f"skipped: {report.skip_reason.removeprefix('Skipped: ')}", DEVICE
    return "failed", _failure_message(report), DEVICE


def replayed_failures(error: BaseException) -> list[str]:
    """Hypothesis replayed a failing input and it failed differently (or passed): the submission's result depends
    on more than its input. The notes name each failure seen, so the verdict says what went wrong."""
    lines = ["the same input failed differently when Hypothesis replayed it: the result depends on more than the "
             "input (memory an earlier call left, a cache, a race); the failures seen:"]
    for sub in getattr(error, "exceptions", ()):
        text = str(sub).strip().splitlines()
        lines.append(f"- {type(sub).__name__}: {' '.join(text[:3])[:FLAKY_LINE_CHARS]}" if text else
                     f"- {type(sub).__name__}")
    return lines


def _failure_message(report: PhaseReport) -> str:
    message = report.failure.split("\nassert ")[0]  # the test's own message, not pytest's re-evaluation
    if report.when not in ("call", "???"):  # "???": xdist's report for a test whose worker was lost
        message = f"error in {report.when}: {message}"
    notes = next((v for k, v in report.user_properties if k == NOTES), "")
    if notes:  # the exception's own text may end with its notes (Python 3.11 prints them): keep them once
        message = message.split(notes.splitlines()[0])[0].rstrip()
    return "\n".join(part for part in (message, notes) if part)


def reproduce_command(args: Sequence[str], seed: int, profile: str) -> str:
    """The pytest command that reruns a grading exactly: every argument it was given (paths, `--submission`,
    `--puzzle`, `--criterion`, `-k`, ...), its seed and Hypothesis profile made explicit, and the options that
    only name output files left out."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _NOT_REPEATED:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return shlex.join(["pytest", *kept, "--grader-seed", str(seed), "--hypothesis-profile", profile])


def build_scorecard(state: GraderSession, args: Sequence[str], hypothesis_profile: str) -> Scorecard | None:
    """Score every collected puzzle from the results received so far; `args` are the run's command-line arguments
    and `hypothesis_profile` the profile it ran under (both for the `reproduce` command)."""
    if not state.collected:
        return None
    from grader.scoring import environment

    cards = {}
    for letter in sorted({p for p, _ in state.collected}):
        puzzle = PUZZLES[letter]
        every = {c.name: state.outcome(letter, c.name) for c in puzzle.criteria}
        # With --criterion, a criterion not selected is shown only when a test found it failed (the guards').
        outcomes = {name: o for name, o in every.items()
                    if not state.criteria or (letter, name) in state.collected or o.status == "failed"}
        tests = {c.name: [r.nodeid for r in state.results.get((letter, c.name), [])] for c in puzzle.criteria}
        data = {name: state.data(letter, name) for name in outcomes}
        cards[letter] = PuzzleCard(letter, score(puzzle, outcomes), outcomes, tests, data)
    return Scorecard(
        submission=state.submission_spec, grader_seed=state.seed, hypothesis_profile=hypothesis_profile,
        environment=environment.describe(), puzzles=cards,
        reproduce=reproduce_command(args, state.seed, hypothesis_profile),
        box=state.box, resources=dict(state.resources) or None)

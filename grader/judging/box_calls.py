"""The one place where what the submission's box raises becomes a test's outcome.

A test gets its puzzle's box from `open_box` and calls the submission through `box_call`; the box raises its own
exceptions (`grader.box`), mapped here, each one way:

- `SubmissionError` (the submission raised in a task, or the task found its result unusable): the test fails with
  an AssertionError, "{criterion}: {doing} failed: raised {the error}" (or the fault the task found), which
  Hypothesis shrinks and a caller that judges on past a failed call catches; not measured where this machine cannot
  decide what the submission did (`undecidable`), or where the caller says a refusal is no fault (`refusal`);
- `ContractError` (the entry point cannot be loaded or called as the contract says): the test fails with its words;
- `NotAttempted` (the submission does not provide the puzzle): the puzzle is not attempted;
- `BoxStopped` (the submission's process ended or stalled, or ended too often to start again): the test fails with
  its reason (`fail_with_stop_reason`, from the grading plugin's report hook). It passes through `box_call` as it
  came: a BaseException, which Hypothesis does not catch, so that a crash or a hang is not replayed to shrink it.
"""

from __future__ import annotations

from typing import Any

import pytest

from grader.box.candidate import BoxedSubmission, NotAttempted
from grader.box.client import Box, BoxStopped, SubmissionError
from grader.box.submission import ContractError
from grader.judging.outcomes import not_attempted, not_measured

REFUSAL_CHARS = 300  # of the submission's error, quoted where its refusal leaves a criterion not measured


def open_box(submission: BoxedSubmission, puzzle: str) -> Box:
    """The puzzle's box (`BoxedSubmission.require`); the test fails on a contract error, and stops as not attempted
    when the submission does not provide the puzzle."""
    try:
        return submission.require(puzzle)
    except (ContractError, NotAttempted) as exc:
        error = exc  # raised outside the handler: the test's failure is the error's words, with no chained traceback
    if isinstance(error, NotAttempted):
        not_attempted(str(error))
    pytest.fail(str(error), pytrace=False)


def box_call(box: Box, task: str, *args: Any, doing: str, deadline: float, refusal: str | None = None,
             **kwargs: Any) -> Any:
    """`box.run(task, *args, deadline=deadline, **kwargs)`'s value. When the submission raised (or the task found a
    fault), AssertionError naming the criterion and what was being done (`doing`); the test stops as not measured
    where this machine cannot decide, and, with `refusal` (why a raise is no fault here), wherever it raised."""
    __tracebackhide__ = True
    try:
        return box.run(task, *args, deadline=deadline, **kwargs)
    except SubmissionError as exc:
        error = exc  # raised outside the handler, as in `open_box`
    if error.undecidable:
        not_measured(error.undecidable)
    if refusal is not None:
        not_measured(f"{doing}: {refusal} ({error.describe()[:REFUSAL_CHARS]})")
    criterion = box.judging()
    said = error.describe() if error.error["fault"] else f"raised {error.describe()}"
    raise AssertionError(f"{criterion + ': ' if criterion else ''}{doing} failed: {said}")


def fail_with_stop_reason(report: pytest.TestReport, error: BaseException | None) -> None:
    """A test that a `BoxStopped` ended fails with its reason alone (its traceback stays for the terminal)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if isinstance(error, BoxStopped) and crash is not None:
        crash.message = str(error)

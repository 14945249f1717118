"""The box's errors become a test's outcome in one place (`grader.judging.box_calls`): a submission's raise fails
its criterion naming what was being done, or leaves it not measured where this machine cannot decide (or where a
refusal is no fault); the entry point's contract fails, an absent puzzle is not attempted, and a test that the
submission's process ending stopped fails with the reason alone."""

from __future__ import annotations

from typing import Any

import pytest

from grader.box.candidate import NotAttempted
from grader.box.client import SubmissionError
from grader.box.submission import ContractError
from grader.judging.box_calls import box_call, open_box
from grader.judging.outcomes import DEVICE, STOP_ATTRIBUTE
from tests.verdicts import run_graded

RAISED = "ValueError: no kernel for bfloat16 (raised at sub.py:3 in dequantize_nf4)"


def _error(**fields: Any) -> dict[str, Any]:
    """A reply's error as `grader.box.client` reads it: by default the submission's own ValueError."""
    return {"type": "ValueError", "message": "no kernel for bfloat16", "where": "sub.py:3 in dequantize_nf4",
            "traceback": "", "undecidable": None, "from_submission": True, "fault": False, **fields}


class _Box:
    """A box whose every call raises `SubmissionError(error)`, made for `criterion`'s test."""

    def __init__(self, error: dict[str, Any], criterion: str | None = "A.single_triton_kernel") -> None:
        self.error, self.criterion = error, criterion

    def run(self, task: str, *args: Any, deadline: float, **kwargs: Any) -> Any:
        raise SubmissionError(self.error)

    def judging(self) -> str | None:
        return self.criterion


class _Submission:
    """A submission whose `require` raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def require(self, puzzle: str) -> Any:
        raise self.error


def _stop(stopped: pytest.ExceptionInfo[BaseException]) -> tuple[str, str, str]:
    return getattr(stopped.value, STOP_ATTRIBUTE)


def test_a_raise_fails_naming_the_criterion_what_was_done_and_the_submissions_frame():
    with pytest.raises(AssertionError) as failed:
        box_call(_Box(_error()), "A.launches", [], doing="recording the launches", deadline=1.0)
    assert str(failed.value) == f"A.single_triton_kernel: recording the launches failed: raised {RAISED}"
    with pytest.raises(AssertionError) as failed:
        box_call(_Box(_error(), criterion=None), "A.call", doing="puzzle A: dequantize_nf4(weight, quant_state)",
                 deadline=1.0)
    assert str(failed.value) == f"puzzle A: dequantize_nf4(weight, quant_state) failed: raised {RAISED}"


def test_a_fault_the_task_found_is_told_in_its_own_words():
    fault = _error(type="SubmissionFault", message="the result does not require grad", fault=True, where="")
    with pytest.raises(AssertionError) as failed:
        box_call(_Box(fault, "D.correct"), "D.run", doing="calling memory_efficient_linear", deadline=1.0)
    assert str(failed.value) == "D.correct: calling memory_efficient_linear failed: the result does not require grad"


def test_what_this_machine_cannot_decide_or_a_refusal_that_is_no_fault_is_not_measured():
    undecidable = _error(undecidable="the submission needs a CUDA device")
    with pytest.raises(pytest.skip.Exception) as stopped:
        box_call(_Box(undecidable), "A.call", doing="fp4", refusal="unsupported by the submission", deadline=1.0)
    assert _stop(stopped) == ("not_measured", "the submission needs a CUDA device", DEVICE)
    with pytest.raises(pytest.skip.Exception) as stopped:
        box_call(_Box(_error()), "A.call", doing="fp4", refusal="unsupported by the submission", deadline=1.0)
    assert _stop(stopped) == ("not_measured", f"fp4: unsupported by the submission ({RAISED})", DEVICE)


def test_the_entry_points_contract_fails_and_an_absent_puzzle_is_not_attempted():
    said = "contract: puzzle A: sub.dequantize_nf4: the submission could not be loaded:\nSyntaxError: ..."
    with pytest.raises(pytest.fail.Exception) as failed:
        open_box(_Submission(ContractError(said)), "A")
    assert str(failed.value) == said and failed.value.__context__ is None
    with pytest.raises(pytest.skip.Exception) as stopped:
        open_box(_Submission(NotAttempted("sub defines no memory_efficient_linear() for puzzle D")), "D")
    assert _stop(stopped) == ("not_attempted", "sub defines no memory_efficient_linear() for puzzle D", DEVICE)


REASON = "the submission's process was killed by SIGSEGV during A.call; it was at sub.py:3 in dequantize_nf4"
STOPPED = f'''
import pytest

from grader.box.client import BoxStopped


@pytest.fixture
def box():
    raise BoxStopped({REASON!r})


@pytest.mark.criterion("A", "correct")
def test_call():
    raise BoxStopped({REASON!r})


@pytest.mark.criterion("A", "single_triton_kernel")
def test_setup(box):
    pass
'''


def test_a_test_the_submissions_process_ending_stopped_fails_with_the_reason_alone(pytester, monkeypatch):
    pytester.makepyfile(test_stopped=STOPPED)
    result, card = run_graded(pytester, monkeypatch)
    result.assert_outcomes(failed=1, errors=1)
    criteria = card["puzzles"]["A"]["criteria"]
    assert criteria["correct"] == {**criteria["correct"], "status": "failed", "detail": REASON}, criteria["correct"]
    kernel = criteria["single_triton_kernel"]
    assert kernel["status"] == "failed" and kernel["detail"] == f"error in setup: {REASON}", kernel

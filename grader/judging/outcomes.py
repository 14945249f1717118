"""How a test says that its criterion could not be measured, or that its puzzle was not attempted.

Both stop the test with pytest's own skip (so the terminal, `-ra` and JUnit show a plain skip, at the line of the
test that stopped), and the skip carries the verdict as data in its `grader_stop` attribute, (status, reason, cause):
the plugin reads that and never parses the skip message.

A criterion is not measured for one of two causes, which the scorecard keeps apart: this machine cannot decide it
(`DEVICE`: a CPU has no inline PTX, no CUDA timing), or the grader itself failed in its own work (`GRADER`: it ran
out of memory computing its oracle, say). The second makes the grading incomplete, never the submission's verdict.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

STOP_ATTRIBUTE = "grader_stop"
DEVICE = "device"  # this machine cannot decide the criterion
GRADER = "grader"  # the grader's own work failed: the grading is incomplete


def _stop(status: str, reason: str, cause: str = DEVICE) -> NoReturn:
    __tracebackhide__ = True
    skip = pytest.skip.Exception(f"{status.replace('_', ' ')}: {reason}")
    setattr(skip, STOP_ATTRIBUTE, (status, reason, cause))
    raise skip


def not_measured(reason: str) -> NoReturn:
    """Stop this test and report its criterion as not measured here (never as passed)."""
    __tracebackhide__ = True
    _stop("not_measured", reason)


def grader_failed(reason: str) -> NoReturn:
    """Stop this test: the grader's own work failed (`reason` says how, and what to do); its criterion is not
    measured and the grading is incomplete."""
    __tracebackhide__ = True
    _stop("not_measured", reason, GRADER)


def not_attempted(reason: str) -> NoReturn:
    """Stop this test: the submission does not provide the puzzle."""
    __tracebackhide__ = True
    _stop("not_attempted", reason)


def judge_out_of_memory_reason(error: BaseException, where: str) -> str:
    """Why a grading is incomplete when the judge's own work (`where`) ran out of memory: what was free, and what
    to do. Called in the judge only, where every submission call goes through its box (whose errors arrive as
    `grader.box.client.SubmissionError`, never as a memory error): the memory error is the grader's."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (f"the grader ran out of memory in its own work ({where}){_device_memory()}; grade it alone or with "
            f"fewer jobs (python -m grader.batch packs gradings by memory). The error: {first[:300]}")


def _device_memory() -> str:
    """', N GiB free of M on the GPU' when torch is loaded and a GPU is present, else ''."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return ""
    try:
        free, total = torch.cuda.mem_get_info()
    except RuntimeError:
        return ""
    return f": {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB on the GPU"

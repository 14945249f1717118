"""How a test says that its criterion could not be measured, or that its puzzle was not attempted.

Both stop the test with pytest's own skip (so the terminal, `-ra` and JUnit show a plain skip, at the line of the
test that stopped), and the skip carries the verdict as data in its `grader_stop` attribute, (status, reason):
the plugin reads that and never parses the skip message.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

STOP_ATTRIBUTE = "grader_stop"


def _stop(status: str, reason: str) -> NoReturn:
    __tracebackhide__ = True
    skip = pytest.skip.Exception(f"{status.replace('_', ' ')}: {reason}")
    setattr(skip, STOP_ATTRIBUTE, (status, reason))
    raise skip


def not_measured(reason: str) -> NoReturn:
    """Stop this test and report its criterion as not measured here (never as passed)."""
    __tracebackhide__ = True
    _stop("not_measured", reason)


def not_attempted(reason: str) -> NoReturn:
    """Stop this test: the submission does not provide the puzzle."""
    __tracebackhide__ = True
    _stop("not_attempted", reason)

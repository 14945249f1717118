"""How a test says that its criterion could not be measured, or that its puzzle was not attempted.

Both stop the test as a pytest skip (so the terminal and JUnit show them as skips) raised as a
`CriterionStop`, which carries the verdict as data: the plugin reads `status` and `reason` from the
exception and never parses the skip message.
"""

from __future__ import annotations

import pytest


class CriterionStop(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """A skip that decides its criterion: `status` is `not_measured` or `not_attempted`."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status.replace('_', ' ')}: {reason}")
        self.status, self.reason = status, reason


def not_measured(reason: str) -> None:
    """Stop this test and report its criterion as not measured here (never as passed)."""
    raise CriterionStop("not_measured", reason)


def not_attempted(reason: str) -> None:
    """Stop this test: the submission does not provide the puzzle."""
    raise CriterionStop("not_attempted", reason)

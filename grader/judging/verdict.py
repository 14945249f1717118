"""The one shape of a correctness standard's answer (`grader/puzzle_*/standard.py`): a `Verdict` on one output.

A standard judges and says why; it never asserts. The test (or fixture) that asked turns a verdict into the
criterion's outcome: it fails with the failures under the criterion's name, and records the summary, the share
of the allowance used and the figure data on the scorecard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """A standard's judgement of one output: its failures as data (each a complete sentence; none when it passes),
    a one-line summary of the figures behind it, the share of the allowance the output used (above 1 fails; None
    where the standard states none) and optional figure data for the HTML report."""

    failures: list[str] = field(default_factory=list)
    summary: str = ""
    used: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the output meets the standard."""
        return not self.failures

    def message(self) -> str:
        """The failures, one a line."""
        return "\n".join(self.failures)

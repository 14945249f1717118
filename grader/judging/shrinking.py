"""A time budget for Hypothesis' shrinking of one property's failure.

Every example of puzzle A runs a kernel through the Triton interpreter on a CPU, so shrinking a failure found on
a large weight can take many minutes (Hypothesis itself stops only after five). Once a property has failed,
`ShrinkBudget` lets shrinking go on for `seconds` (`--shrink-seconds`, else per Hypothesis profile:
`profiles.SHRINK_SECONDS`), then rejects further examples (`hypothesis.reject()`), so the
shrinker stops with the smallest failure found so far. Hypothesis' final replay of that failure runs in full and
carries a note saying it may not be fully shrunk; its `@reproduce_failure` line replays it exactly.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from hypothesis import note, reject
from hypothesis.control import current_build_context

class ShrinkBudget:
    """Run each example of one property inside `with budget.example():`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.first_failure: float | None = None

    @contextmanager
    def example(self) -> Iterator[None]:
        """One example: rejected once the budget is spent; an AssertionError from it starts the budget."""
        self._start_example()
        try:
            yield
        except AssertionError:
            if self.first_failure is None:
                self.first_failure = time.perf_counter()
            raise

    def _start_example(self) -> None:
        """Reject the example once the budget is spent, except Hypothesis' final replay of the failure."""
        if self.first_failure is None or time.perf_counter() - self.first_failure <= self.seconds:
            return
        if current_build_context().is_final:
            note(f"shrinking stopped after {self.seconds:g} s (the grader's shrink budget): this failing example "
                 "may not be the smallest")
            return
        reject()

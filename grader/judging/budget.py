"""What one puzzle may cost before its remaining work is not run: process endings and time, and the words for both.

Two kinds of process end under a puzzle, and one limit, `CRASHES_PER_PUZZLE`, bounds each: the box's runner, the
submission's process (`grader.box.client`: it crashed, stalled or exited during a call, within one judge process),
and the judge's grading worker (`grader.plugins.isolation`: lost while one of the puzzle's tests ran). Each ending is
kept in a `Crashes` record with the criterion of the test that was running, whose verdict tells why; once the limit
is reached, `Crashes.stop` says why the rest is not run, pointing to those criteria (a crash is told once).

A puzzle's time (`Ledger.spent`) is the wall-clock seconds its tests ran, each from the start of its setup to the end
of its teardown, or to the loss of the worker that ran it; past `--puzzle-timeout` (`DEFAULT_PUZZLE_TIMEOUT_S`) its
remaining tests are not run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

CRASHES_PER_PUZZLE = 2  # after this many endings of its processes (of one kind), a puzzle's remaining work is not run
DEFAULT_PUZZLE_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Crashes:
    """The processes of one kind that a puzzle's work ended: how many, the criteria of the tests that were running
    (each once, in order; their verdicts tell why) and the last reason (for an ending no test's verdict tells)."""

    count: int = 0
    told_in: tuple[str, ...] = ()
    last: str = ""

    def add(self, criterion: str | None, reason: str = "") -> Crashes:
        """This record with one more ending, while a test of `criterion` ran (None: no test's verdict tells it)."""
        told = tuple(dict.fromkeys([*self.told_in, *([criterion] if criterion else [])]))
        return Crashes(self.count + 1, told, reason)

    def stop(self, puzzle: str, process: str) -> str | None:
        """Why `puzzle`'s remaining work is not run once its `process`es ended `CRASHES_PER_PUZZLE` times, else None."""
        if self.count < CRASHES_PER_PUZZLE:
            return None
        ended = f"puzzle {puzzle}'s {process} ended {self.count} times"
        return f"not judged: {ended} (see {', '.join(self.told_in)})" if self.told_in else \
            f"not run: {ended} (last: {self.last})"


@dataclass
class Ledger:
    """Per puzzle, the grading workers its tests ended and its time (see the module): kept by the controller across
    worker restarts, handed to each new worker as JSON (`to_json`, `from_json`), kept up to date there too."""

    crashes: dict[str, Crashes] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def add_time(self, puzzle: str, seconds: float) -> None:
        """Count one test's `seconds` against `puzzle`."""
        self.spent[puzzle] = self.spent.get(puzzle, 0.0) + seconds

    def add_crash(self, puzzle: str, criterion: str) -> None:
        """Count one more worker ended by `puzzle`'s tests, while a test of `criterion` ran (its verdict tells why)."""
        self.crashes[puzzle] = self.crashes.get(puzzle, Crashes()).add(criterion)

    def stop(self, puzzle: str, limit_s: float) -> str | None:
        """Why `puzzle`'s next test is not run (it ended too many workers, or used up `limit_s`), else None."""
        ended = self.crashes.get(puzzle, Crashes()).stop(puzzle, "grading worker")
        if ended is None and self.spent.get(puzzle, 0.0) > limit_s:
            return f"not run: puzzle {puzzle} exceeded its time limit of {limit_s:g} s (--puzzle-timeout)"
        return ended

    def to_json(self) -> str:
        """The ledger as JSON, for a worker's `workerinput`."""
        return json.dumps({"crashes": {p: asdict(c) for p, c in self.crashes.items()}, "spent": self.spent})

    @classmethod
    def from_json(cls, text: str) -> Ledger:
        """The ledger `to_json` wrote."""
        data = json.loads(text)
        return cls({p: Crashes(int(c["count"]), tuple(map(str, c["told_in"])), str(c["last"]))
                    for p, c in data["crashes"].items()},
                   {p: float(s) for p, s in data["spent"].items()})

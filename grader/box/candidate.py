"""The submission as the judge knows it: never imported here, run in one box per puzzle (`grader.box`).

`BoxedSubmission.require(puzzle)` is what a test's entry-point fixture asks for: the puzzle's `Box`, once its
runner has loaded the submission and found the entry point; otherwise the test fails with the contract's words,
or stops as not attempted when the submission does not provide that puzzle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable
import pytest

from grader.box.client import Box, BoxStopped
from grader.box.sandbox import BoxInfo
from grader.box.submission import SIGNATURES, display_name
from grader.judging.outcomes import not_attempted
from grader.scoring.rubric import PUZZLES


class BoxedSubmission:
    """A submission spec and its boxes, one per puzzle, started on first use."""

    def __init__(self, spec: str, *, root: Path, device: str, info: BoxInfo,
                 progress: Callable[[str], None] | None, judging: Callable[[], str | None] = lambda: None,
                 hidden: list[Path] = ()) -> None:
        self.spec, self.root, self.device, self.info, self.progress, self.judging = \
            spec, root, device, info, progress, judging
        self.hidden = list(hidden)  # the judge's own directories, which no box may see
        self._boxes: dict[str, Box] = {}

    @property
    def name(self) -> str:
        """A short display name for scorecards."""
        return display_name(self.spec)

    def box(self, puzzle: str) -> Box:
        """The puzzle's box (its runner starts on first use)."""
        if puzzle not in self._boxes:
            self._boxes[puzzle] = Box(puzzle=puzzle, spec=self.spec, root=self.root, device=self.device,
                                      info=self.info, progress=self.progress, judging=self.judging,
                                      hidden=self.hidden)
        return self._boxes[puzzle]

    def peak_bytes(self) -> int | None:
        """The most GPU memory one of its boxes reserved, as the boxes reported it (None on a CPU)."""
        peaks = [b.peak_bytes for b in self._boxes.values() if b.peak_bytes is not None]
        return max(peaks) if peaks else None

    def close(self) -> None:
        """End every runner."""
        for box in self._boxes.values():
            box.close()

    def require(self, puzzle: str) -> Box:
        """The puzzle's box for a test: fails on a contract error, stops as not attempted when the puzzle's entry
        point is absent (but fails when no puzzle's is: a submission of nothing is broken, not partial)."""
        box = self.box(puzzle)
        entry = PUZZLES[puzzle].entry_point
        try:
            hello = box.describe()
        except BoxStopped as exc:
            pytest.fail(f"contract: puzzle {puzzle}: {self.name}.{entry}: the submission's process did not start: "
                        f"{exc}", pytrace=False)
        if not hello["loaded"]:
            pytest.fail(f"contract: puzzle {puzzle}: {self.name}.{entry}: the submission could not be loaded:\n"
                        f"{hello['load_error']}", pytrace=False)
        found = hello["entries"]
        if not found[puzzle]["present"]:
            if not any(e["present"] for e in found.values()):
                expected = ", ".join(f"{PUZZLES[p].entry_point}({', '.join(SIGNATURES[p])})" for p in PUZZLES)
                pytest.fail(f"contract: puzzle {puzzle}: {self.name} defines no {entry}() and no other puzzle's entry "
                            f"point either; expected at least one of {expected}; it defines "
                            f"{hello['callables'] or 'no functions'}", pytrace=False)
            not_attempted(f"{self.name} defines no {entry}() for puzzle {puzzle}")
        if found[puzzle]["error"]:
            pytest.fail(f"contract: {found[puzzle]['error']}", pytrace=False)
        return box


"""The submission as the judge knows it: never imported here, run in one box per puzzle (`grader.box`).

`BoxedSubmission.require(puzzle)` is what a test's entry-point fixture asks for (through
`grader.judging.box_calls.open_box`, which turns its errors into the test's outcome): the puzzle's `Box`, once its
runner has loaded the submission and found the entry point; otherwise `ContractError` with the contract's words, or
`NotAttempted` when the submission does not provide that puzzle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from grader.box.client import Box, BoxStopped
from grader.box.sandbox import BoxInfo
from grader.box.submission import SIGNATURES, ContractError, display_name
from grader.scoring.rubric import PUZZLES


class NotAttempted(Exception):
    """The submission does not provide the puzzle (its entry point is absent, another puzzle's is there); the
    message says so."""


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
        """The puzzle's box for a test: ContractError on a contract error, NotAttempted when the puzzle's entry point
        is absent (but ContractError when no puzzle's is: a submission of nothing is broken, not partial)."""
        box = self.box(puzzle)
        entry = PUZZLES[puzzle].entry_point
        try:
            hello = box.describe()
        except BoxStopped as exc:
            raise ContractError(f"contract: puzzle {puzzle}: {self.name}.{entry}: the submission's process did not "
                                f"start: {exc}") from None
        if not hello["loaded"]:
            raise ContractError(f"contract: puzzle {puzzle}: {self.name}.{entry}: the submission could not be loaded:\n"
                                f"{hello['load_error']}")
        found = hello["entries"]
        if not found[puzzle]["present"]:
            if not any(e["present"] for e in found.values()):
                expected = ", ".join(f"{PUZZLES[p].entry_point}({', '.join(SIGNATURES[p])})" for p in PUZZLES)
                raise ContractError(f"contract: puzzle {puzzle}: {self.name} defines no {entry}() and no other "
                                    f"puzzle's entry point either; expected at least one of {expected}; it defines "
                                    f"{hello['callables'] or 'no functions'}")
            raise NotAttempted(f"{self.name} defines no {entry}() for puzzle {puzzle}")
        if found[puzzle]["error"]:
            raise ContractError(f"contract: {found[puzzle]['error']}")
        return box

"""State reports received from runners, kept until the judge's guard plugin reads them (torch-free: the plugin
imports this at start-up)."""

from __future__ import annotations

_RECEIVED: list[tuple[str, dict[str, list[str]]]] = []


def record(puzzle: str, report: dict[str, list[str]]) -> None:
    """Keep one reply's state report (`changed` and `tampered` lines, grader.box.state) for `puzzle`."""
    _RECEIVED.append((puzzle, report))


def drain() -> list[tuple[str, dict[str, list[str]]]]:
    """(puzzle, report) for every reply since the last drain."""
    out = list(_RECEIVED)
    _RECEIVED.clear()
    return out

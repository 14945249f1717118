"""The one way a grading is started as a process: `pytest grader/puzzle_x --submission S --puzzle X ...`.

The batch runner's workers, the self-tests' gradings (`tests/verdicts.py`) and the GPU corpus run
(`scripts/gpu_verdicts.py`) all build their command here, so that a grading started by any of them is the one a user
would start. A single puzzle collects only its own test directory (its imports are all that is paid).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[2]


def grading_args(submission: str, *, puzzles: Sequence[str], seed: int, score_json: Path | str,
                 criteria: Sequence[str] = (), profile: str | None = None, isolated: bool = True,
                 extra: Sequence[str] = ()) -> list[str]:
    """pytest's arguments for grading `submission` on `puzzles` (only `criteria`, as 'A.correct', when given).

    `isolated=False` runs the tests in the pytest process itself (`--no-isolation`), for a caller that is already a
    process per grading; `profile` is the Hypothesis profile (the grader's default when None)."""
    target = REPO / "grader" / (f"puzzle_{puzzles[0].lower()}" if len(puzzles) == 1 else "")
    args = [str(target), "--rootdir", str(REPO), "-p", "no:cacheprovider", "-q", "--submission", submission,
            "--grader-seed", str(seed), "--score-json", str(score_json)]
    args += [arg for p in puzzles for arg in ("--puzzle", p)]
    args += [arg for c in criteria for arg in ("--criterion", c)]
    if profile is not None:
        args += ["--hypothesis-profile", profile]
    if not isolated:
        args.append("--no-isolation")
    return [*args, *extra]


def grading_command(submission: str, **options) -> list[str]:
    """The whole command line (this interpreter's `python -m pytest ...`); options as `grading_args`."""
    return [sys.executable, "-m", "pytest", *grading_args(submission, **options)]

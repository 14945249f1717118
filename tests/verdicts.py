"""Run the grader on a submission in a subprocess and return its scorecard JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grader.batch.grading_command import grading_args


REPO = Path(__file__).resolve().parent.parent
BROKEN = REPO / "tests" / "broken"
# Fixed, so a verdict test that fails can be replayed exactly.
SEED = 20261125
# Shrinking a failure of puzzle A for this long at most (`--shrink-seconds`; the `ci` profile's own budget is 15 s,
# two of A's properties spend it on every kernel they fail): the verdicts and their words are those of a fully
# shrunk failure; tests/test_isolation.py checks an example shrunk under the profile's own budget.
SHRINK_SECONDS = 2.0


def grade(pytester: pytest.Pytester, submission: str | Path, *, puzzles: tuple[str, ...],
          criteria: tuple[str, ...] = (), extra: tuple[str, ...] = (), isolated: bool = False,
          profile: str = "ci", shrink_seconds: float | None = SHRINK_SECONDS) -> dict[str, Any]:
    """Grade `submission` on `puzzles` (optionally only `criteria`, as 'A.correct') with a Hypothesis profile.

    The grader's tests run in this subprocess (`--no-isolation`: the verdicts are the same, and a worker
    process per grading would cost the self-tests minutes) unless `isolated`, as a user's run does.
    `shrink_seconds=None` leaves the profile's shrink budget.
    """
    score = pytester.path / "score.json"
    shrink = () if shrink_seconds is None else ("--shrink-seconds", f"{shrink_seconds:g}")
    result = pytester.runpytest_subprocess(*grading_args(str(submission), puzzles=puzzles, seed=SEED, score_json=score,
                                                         criteria=criteria, profile=profile, isolated=isolated,
                                                         extra=(*shrink, *extra)))
    assert score.exists(), f"the grader wrote no scorecard (exit {result.ret}):\n{result.stdout.str()[-3000:]}"
    card = json.loads(score.read_text())
    card["exit_code"] = int(result.ret)
    card["output"] = result.stdout.str()
    return card


def run_with_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> pytest.RunResult:
    """Run pytest in a subprocess over pytester's files with the grader plugin loaded, plus `args`.

    The subprocess is a run of its own, not an xdist worker: PYTEST_XDIST_WORKER, inherited when the
    self-tests run under -n, is removed (pytest-benchmark would otherwise disable itself there).
    """
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    return pytester.runpytest_subprocess("-p", "grader.plugins.grading", "-p", "no:cacheprovider", *args)


def run_graded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
               *args: str) -> tuple[pytest.RunResult, dict[str, Any] | None]:
    """`run_with_plugin` as a grading run of pytester's files (`--submission solutions`, the judge in that process:
    `--no-isolation`), plus `args`: the run's result and its scorecard JSON (None when it wrote none)."""
    score = pytester.path / "score.json"
    score.unlink(missing_ok=True)
    result = run_with_plugin(pytester, monkeypatch, "--submission", "solutions", "--no-isolation",
                             "--score-json", str(score), *args)
    return result, json.loads(score.read_text()) if score.exists() else None


def statuses(card: dict[str, Any], puzzle: str) -> dict[str, str]:
    """criterion -> status for one puzzle of a scorecard."""
    return {name: c["status"] for name, c in card["puzzles"][puzzle]["criteria"].items()}

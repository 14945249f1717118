"""Puzzle A's `--min-score` gate decides the exit status from the points (the corpus of broken and good
submissions and their verdicts is tests/expected/A.toml, run by tests/test_corpus.py)."""

from __future__ import annotations

import pytest

from tests.verdicts import BROKEN, grade


@pytest.mark.slow
@pytest.mark.parametrize("threshold,exit_ok", [(3, True), (4, False)])
def test_min_score_gates_the_exit_status(pytester, threshold, exit_ok):
    """`--min-score A=N` decides the exit status from the points: the plain kernel earns 3 for one launch."""
    card = grade(pytester, BROKEN / "a_plain_control.py", puzzles=("A",),
                 criteria=("A.correct", "A.single_triton_kernel"), extra=("--min-score", f"A={threshold}"))
    assert card["puzzles"]["A"]["score"] == 3, card["puzzles"]["A"]
    assert (card["exit_code"] == 0) == exit_ok, f"--min-score A={threshold} with 3 points gave exit {card['exit_code']}"
    assert f"--min-score A={threshold}: scored 3 -> {'ok' if exit_ok else 'BELOW'}" in card["output"]
    # The reproduce command is exact: every option that selected or changed the run, and no output path.
    for part in ("--criterion A.correct --criterion A.single_triton_kernel", f"--min-score A={threshold}",
                 "--puzzle A", "--no-isolation", "--grader-seed 20261125 --hypothesis-profile ci"):
        assert part in card["reproduce"], card["reproduce"]
    assert "--score-json" not in card["reproduce"] and "--basetemp" not in card["reproduce"], card["reproduce"]

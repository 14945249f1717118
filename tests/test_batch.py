"""Grading many submissions: a directory and single files graded by `python -m grader.batch`, one crashing
submission not stopping the others, progress printed, leaderboards written and merged across runs (the
several-machines workflow of the README); several --submission values given to pytest are refused; the per-puzzle
time limit is `--puzzle-timeout`, as in a grading."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.batching import run_batch, scorecard
from tests.verdicts import REPO

SUBMISSIONS = {
    "alice.py": "from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401\n",
    "bob.py": "def dequantize_nf4(weight, quant_state):\n    return None\n",
    "_helper.py": "raise RuntimeError('a helper module is not a submission')\n",
}
# Unboxed (--box none), a submission can reach its grading worker: carol kills it, the worker's lost path of the batch.
CAROL = "import os, signal\n\n\ndef dequantize_nf4(weight, quant_state):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
ARGS = ["--jobs", "2", "--", "--criterion", "A.correct", "--criterion", "A.tested_in_f16_and_bf16",
        "-k", "linear4bit or notebook", "--hypothesis-profile", "ci"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Two batch runs (a directory; a single file), as on two machines, then merged."""
    root = tmp_path_factory.getbasetemp().parent / "batch-subs"
    root.mkdir(exist_ok=True)
    (root / "team").mkdir(exist_ok=True)
    for name, text in SUBMISSIONS.items():
        (root / "team" / name).write_text(text)
    (root / "carol.py").write_text(CAROL)
    first, first_log = run_batch(tmp_path_factory, "batch-first", [str(root / "team"), *ARGS])
    second, second_log = run_batch(tmp_path_factory, "batch-second", [str(root / "carol.py"), *ARGS, "--box", "none"])
    merged, merge_log = run_batch(tmp_path_factory, "batch-merged", ["--merge", str(first), str(second)])
    return {"first": (first, first_log), "second": (second, second_log), "merged": (merged, merge_log)}


@pytest.mark.slow
def test_directory_expands_to_its_submissions_and_progress_is_printed(runs):
    out, log = runs["first"]
    assert sorted(p.stem for p in (out / "scorecards").glob("*.json")) == ["alice", "bob"], log
    for line in ("[1/2] ", "[2/2] ", "[start] alice puzzle A", "[start] bob puzzle A"):
        assert line in log, log
    assert "alice puzzle A: 1/14, 2/2 criteria passed" in log, log


@pytest.mark.slow
def test_a_crashing_submission_is_failed_with_its_reason_and_its_scorecard_written(runs):
    out, log = runs["second"]
    card = scorecard(out, "carol")
    assert "killed by SIGKILL" in card["workers"]["A"]["reason"], card["workers"]
    assert card["puzzles"]["A"]["criteria"]["correct"]["status"] == "failed"
    assert "carol puzzle A: FAILED (dequantize_nf4() was killed by SIGKILL" in log, log
    # One schema for every scorecard (grader.scoring.scorecard.scorecard_json), and the crashed worker's exact command.
    alice = scorecard(runs["first"][0], "alice")
    assert set(card) == set(alice) and {"name", "workers", "reproduce", "puzzles"} <= set(card), (card, alice)
    again = card["reproduce"]["A"]
    for part in ("--submission", "carol.py", "--puzzle A", "--criterion A.correct", "-k 'linear4bit or notebook'",
                 "--no-isolation", "--box none", f"--grader-seed {card['grader_seed']}", "--hypothesis-profile ci"):
        assert part in again, again
    assert "--score-json" not in again, again


@pytest.mark.slow
def test_merged_leaderboard_ranks_every_submission(runs):
    out, _ = runs["merged"]
    board = json.loads((out / "leaderboard.json").read_text())
    scores = {c["name"]: c["puzzles"]["A"]["score"] for c in board["submissions"]}
    assert scores == {"alice": 1, "bob": 0, "carol": 0}, scores
    assert board["grader_seeds"] == [scorecard(out, "alice")["grader_seed"]]
    rows = [r for r in (out / "leaderboard.md").read_text().splitlines() if r.startswith("| ") and "submission" not in r]
    assert rows[0] == "| alice | 1/14* [2/2] | 1 |", rows
    assert {r.split(" | ")[0] for r in rows[1:]} == {"| bob", "| carol"}
    assert all("0/14 ✗" in r for r in rows[1:]), rows


def test_pytest_refuses_several_submissions_and_points_to_the_batch_driver(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "grader" / "puzzle_a"), "--rootdir", str(REPO),
                           "-p", "no:cacheprovider", "--submission", "a.py", "--submission", "b.py"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "python -m grader.batch a.py b.py" in proc.stderr, proc.stderr


def test_the_batch_names_its_time_limit_puzzle_timeout_and_still_takes_the_old_name(tmp_path, monkeypatch, capsys):
    """One name for one limit: `--puzzle-timeout`, as pytest's grading option; `--timeout-per-puzzle` is still
    accepted, hidden from --help, with a deprecation message on standard error."""
    from grader.batch import driver

    graded = []
    monkeypatch.setattr(driver, "grade_all", lambda specs, **options: graded.append(options["timeout"]))
    sub = tmp_path / "mine.py"
    sub.write_text("def dequantize_nf4(weight, quant_state):\n    return None\n")
    assert driver.main([str(sub), "--gpus", "none", "--puzzle-timeout", "120"]) == 0
    assert capsys.readouterr().err == ""
    assert driver.main([str(sub), "--gpus", "none", "--timeout-per-puzzle", "90"]) == 0
    assert "--timeout-per-puzzle is deprecated; use --puzzle-timeout" in capsys.readouterr().err
    assert driver.main([str(sub), "--gpus", "none"]) == 0
    assert graded == [120.0, 90.0, 3600.0]
    with pytest.raises(SystemExit):
        driver.main(["--help"])
    usage = capsys.readouterr().out
    assert "--puzzle-timeout" in usage and "--timeout-per-puzzle" not in usage, usage

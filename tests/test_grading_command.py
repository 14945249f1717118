"""The grading command every starter of a grading shares (`grader.batch.grading_command`)."""

from __future__ import annotations

import sys
from pathlib import Path

from grader.batch.grading_command import REPO, grading_args, grading_command
from grader.batch.worker import Job, worker_command


def test_one_puzzle_collects_only_its_own_tests_and_names_everything_it_grades():
    args = grading_args("sub.py", puzzles=("C",), seed=7, score_json=Path("s.json"), criteria=("C.correct",),
                        profile="ci", extra=("-k", "loss"))
    assert args[0] == str(REPO / "grader" / "puzzle_c")
    pairs = dict(zip(args[1::], args[2::]))
    assert pairs["--submission"] == "sub.py" and pairs["--puzzle"] == "C" and pairs["--criterion"] == "C.correct"
    assert pairs["--grader-seed"] == "7" and pairs["--score-json"] == "s.json" and pairs["--hypothesis-profile"] == "ci"
    assert args[-2:] == ["-k", "loss"] and "--no-isolation" not in args


def test_several_puzzles_collect_the_whole_grader():
    args = grading_args("solutions", puzzles=("A", "D"), seed=1, score_json="s.json")
    assert args[0] == str(REPO / "grader")
    assert [args[i + 1] for i, a in enumerate(args) if a == "--puzzle"] == ["A", "D"]
    assert "--hypothesis-profile" not in args  # the grader's own default profile


def test_a_batch_worker_runs_the_users_command_in_its_own_process():
    job = Job("some_package.solution", "solution", "A")  # a module name: passed on as given
    assert worker_command(job, 3, Path("w.json"), ["--timeout", "9"]) == grading_command(
        "some_package.solution", puzzles=("A",), seed=3, score_json=Path("w.json"), isolated=False, extra=["--timeout", "9"])
    assert worker_command(job, 3, Path("w.json"), [])[:3] == [sys.executable, "-m", "pytest"]

"""The grader as an installed pytest plugin: a wheel built from this checkout, installed into a fresh virtual
environment, grades a submission in another directory with `pytest --pyargs grader` exactly as the in-repo run
does, and leaves an unrelated test run in that environment as it would be without it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.verdicts import REPO, SEED

GOOD = REPO / "tests" / "good" / "a_2d_tile_custom_op.py"
BROKEN = '''"""Broken: returns float32 whatever quant_state.dtype says."""
import torch


def dequantize_nf4(weight, quant_state):
    return torch.zeros(quant_state.shape, dtype=torch.float32, device=weight.device)
'''
UNRELATED = '''from hypothesis import given, settings, strategies as st
import hypothesis.core


@given(st.integers())
def test_hypothesis_keeps_its_own_settings(x):
    # Hypothesis' own profiles (default, or its ci profile under CI=1) draw 100 examples; the grader's 8, 25, 300.
    assert settings.default.max_examples == 100 and hypothesis.core.global_force_seed is None
'''
GRADE = ["--puzzle", "A", "--criterion", "A.correct", "--criterion", "A.single_triton_kernel",
         "-k", "linear4bit or one_triton", "--grader-seed", str(SEED), "-p", "no:cacheprovider"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1200, env=env)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding torch (as scripts/setup.sh installs it) and the grader's wheel."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy: building writes build/ and *.egg-info into the tree it builds
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                                ".venv", "out", ".whl", ".hypothesis", ".pytest_cache"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(source)], root)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((root / "dist").glob("unsloth_puzzle_grader-*.whl"))
    assert _run([sys.executable, "-m", "venv", str(root / "venv")], root).returncode == 0
    python = root / "venv" / "bin" / "python"
    for args in ([os.environ.get("TORCH_SPEC", "torch==2.13.0")], [str(wheel)]):
        done = _run([str(python), "-m", "pip", "install", "-q", *args], root)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    where = _run([str(python), "-c", "import grader; print(grader.__file__)"], root)
    assert str(root / "venv") in where.stdout, f"the venv imports the grader from {where.stdout}"
    return python


def _grade(python: Path, target: list[str], submission: Path, cwd: Path) -> tuple[int, dict]:
    score = cwd / f"{submission.stem}.json"
    done = _run([str(python), "-m", "pytest", *target, "--submission", str(submission), "--score-json", str(score),
                 *GRADE], cwd)
    assert score.exists(), f"no scorecard (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    return done.returncode, json.loads(score.read_text())


@pytest.mark.slow
def test_the_installed_grader_grades_like_the_checkout(venv_python, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    good = Path(shutil.copy(GOOD, work / "mine.py"))
    (work / "broken.py").write_text(BROKEN)
    code, card = _grade(venv_python, ["--pyargs", "grader"], good, work)
    in_repo_code, in_repo = _grade(Path(sys.executable), [str(REPO / "grader")], good, tmp_path)
    statuses = {n: c["status"] for n, c in card["puzzles"]["A"]["criteria"].items()}
    assert code == 0 and statuses == {"correct": "passed", "single_triton_kernel": "passed"}, card
    assert {n: (c["status"], c["points"]) for n, c in in_repo["puzzles"]["A"]["criteria"].items()} == {
        n: (c["status"], c["points"]) for n, c in card["puzzles"]["A"]["criteria"].items()} and in_repo_code == code
    assert card["reproduce"].startswith("pytest --pyargs grader --submission"), card["reproduce"]
    code, card = _grade(venv_python, ["--pyargs", "grader"], work / "broken.py", work)
    assert code != 0 and card["puzzles"]["A"]["criteria"]["correct"]["status"] == "failed", card


@pytest.mark.slow
def test_an_unrelated_test_run_is_untouched(venv_python, tmp_path):
    (tmp_path / "test_unrelated.py").write_text(UNRELATED)
    done = _run([str(venv_python), "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "unsloth-puzzle-grader" in done.stdout, "the plugin is not loaded, so this checks nothing"
    assert "grader" not in done.stdout.replace("unsloth-puzzle-grader", ""), done.stdout

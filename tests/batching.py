"""Run `python -m grader.batch` once per test session, even under pytest-xdist (workers share the result)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.verdicts import REPO, SEED


def run_batch(tmp_path_factory: pytest.TempPathFactory, key: str, args: list[str]) -> tuple[Path, str]:
    """Run the batch driver with `args` (plus `--out`, `--grader-seed`) once; return its output dir and stdout.

    The first xdist worker to ask runs it under a file lock; the others wait for the lock and reuse the result.
    """
    # Under xdist the workers' base temps share a parent made for this session; without xdist that parent is
    # shared by every earlier session, so the session's own base temp is the root.
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, log = root / key, root / f"{key}.stdout"
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not log.exists():
            proc = subprocess.run([sys.executable, "-m", "grader.batch", "--out", str(out), "--grader-seed", str(SEED),
                                   *args], cwd=REPO, capture_output=True, text=True)
            assert proc.returncode == 0, f"grader.batch exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            log.write_text(proc.stdout)
    return out, log.read_text()


def scorecard(out: Path, name: str) -> dict[str, Any]:
    """The scorecard the batch wrote for submission `name`."""
    path = out / "scorecards" / f"{name}.json"
    assert path.exists(), f"no scorecard written for {name} in {out}"
    return json.loads(path.read_text())

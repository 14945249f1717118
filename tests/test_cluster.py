"""Grading on a Ray cluster (`python -m grader.batch ... --ray`, grader.batch.cluster), on a local Ray cluster on the
CPU: the same leaderboard as a run on this host for the same seed, a submission outside the checkout shipped
to the node, a task whose Ray worker dies rerun once and then failed with the Ray error; the packing of a
package submission, the reason of a task that raised, and the options refused with --ray.

CI installs Ray (the `[cluster]` extra), so there a missing Ray fails this module instead of skipping it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from grader.batch import cluster, driver, worker
from tests.batching import run_batch, scorecard
from tests.verdicts import REPO

if os.environ.get("CI"):
    try:
        import ray
    except ImportError:
        pytest.fail('CI is set but Ray is not installed: .ci/run installs it with pip install -e ".[cluster]"',
                    pytrace=False)
else:
    ray = pytest.importorskip("ray", reason='grader.batch.cluster needs Ray: pip install -e ".[cluster]"')

ALICE = "from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401\n"
# Kills the Ray worker process that runs its grading worker (an ancestor: the grading worker, then the judge, then
# this unboxed runner), so Ray sees the task's worker die. Only an unboxed runner (--box none) can see it.
DIES = """import os, signal

pid = os.getppid()
while pid > 1:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        if f.read().startswith(b"ray::"):
            os.kill(pid, signal.SIGKILL)
            os._exit(1)
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
raise RuntimeError("this test submission kills the Ray worker that grades it, and found none among its ancestors")
"""
WRONG_SHAPE = "tests/broken/a_wrong_shape.py"
PYTEST_ARGS = ["--", "--criterion", "A.correct", "--criterion", "A.tested_in_f16_and_bf16",
               "-k", "linear4bit or notebook", "--hypothesis-profile", "ci", "--box", "none"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """The same two submissions graded on this host and through --ray (with a third whose Ray worker dies)."""
    root = tmp_path_factory.getbasetemp().parent / "cluster-subs"
    root.mkdir(exist_ok=True)
    (root / "alice.py").write_text(ALICE)
    (root / "dies.py").write_text(DIES)
    local = run_batch(tmp_path_factory, "cluster-local", [str(root / "alice.py"), WRONG_SHAPE, "--jobs", "2",
                                                          *PYTEST_ARGS])
    on_ray = run_batch(tmp_path_factory, "cluster-ray", [str(root / "alice.py"), WRONG_SHAPE, str(root / "dies.py"),
                                                         "--ray", *PYTEST_ARGS])
    return {"root": root, "local": local, "ray": on_ray}


def _verdicts(out: Path) -> dict[str, tuple[int, dict[str, str]]]:
    board = json.loads((out / "leaderboard.json").read_text())
    return {c["name"]: (c["puzzles"]["A"]["score"], {n: v["status"] for n, v in c["puzzles"]["A"]["criteria"].items()})
            for c in board["submissions"]}


@pytest.mark.slow
def test_ray_and_local_runs_give_the_same_leaderboard(runs):
    local, on_ray = _verdicts(runs["local"][0]), _verdicts(runs["ray"][0])
    assert local["alice"] == (1, {"correct": "passed", "tested_in_f16_and_bf16": "passed"}), local
    assert local["a_wrong_shape"][0] == 0 and local["a_wrong_shape"][1]["correct"] == "failed", local
    for name in ("alice", "a_wrong_shape"):
        assert on_ray[name] == local[name], (name, on_ray, local)


@pytest.mark.slow
def test_a_submission_outside_the_checkout_is_shipped_and_its_card_points_here(runs):
    out, log = runs["ray"]
    alice = runs["root"] / "alice.py"
    assert not alice.resolve().is_relative_to(REPO)
    for line in ("[start] alice puzzle A on ", "[start] a_wrong_shape puzzle A on ", "[1/3] ", "[3/3] ",
                 "alice puzzle A: 1/14, 2/2 criteria passed"):
        assert line in log, log
    worker_log = (out / "work" / "alice" / "A.log").read_text()
    assert "grader-alice-A-" in worker_log and "/submission/alice.py" in worker_log, worker_log[-2000:]
    card = scorecard(out, "alice")
    assert f"--submission {alice.resolve()}" in card["reproduce"]["A"], card["reproduce"]
    assert str(REPO / "grader" / "puzzle_a") in card["reproduce"]["A"], card["reproduce"]


@pytest.mark.slow
def test_a_task_whose_ray_worker_dies_is_rerun_once_then_failed_with_the_ray_error(runs):
    out, log = runs["ray"]
    assert log.count("[start] dies puzzle A on ") == 2 and "(rerun: the first attempt was lost)" in log, log
    card = scorecard(out, "dies")
    worker = card["workers"]["A"]
    assert "was lost with its Ray task" in worker["reason"] and "WorkerCrashedError" in worker["reason"], worker
    assert worker["exit_code"] is None
    assert card["puzzles"]["A"]["criteria"]["correct"]["status"] == "failed"
    assert "WorkerCrashedError" in (out / "work" / "dies" / "A.log").read_text()
    assert "dies puzzle A: FAILED (dequantize_nf4() was lost with its Ray task" in log, log


def test_a_package_submission_is_packed_without_caches_and_unpacked_whole(tmp_path):
    pkg = tmp_path / "team" / "bob"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "__init__.py").write_text("from .kernels.nf4 import dequantize_nf4\n")
    (pkg / "kernels" / "nf4.py").write_text("def dequantize_nf4(weight, quant_state):\n    return None\n")
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    files = cluster.pack(str(pkg))
    assert sorted(files) == ["bob/__init__.py", "bob/kernels/nf4.py"], sorted(files)
    spec = cluster.unpack(files, tmp_path / "node")
    assert spec == str((tmp_path / "node" / "bob").resolve())
    assert (Path(spec) / "kernels" / "nf4.py").read_text() == (pkg / "kernels" / "nf4.py").read_text()
    assert cluster.pack("tests.broken.a_wrong_shape") == {}  # a module name: imported from the shipped checkout
    assert cluster.unpack({}, tmp_path / "none") is None


def test_a_task_that_raised_fails_its_puzzle_with_the_error_and_is_not_called_lost(tmp_path):
    error = ray.exceptions.RayTaskError("_grade_task", "Traceback ...\nOSError: disk full", OSError("disk full"))
    job = worker.Job("bob.py", "bob", "A")
    result = cluster.lost_result(job, error, 3.0, tmp_path / "A.log")
    assert result.card is None and result.exit_code is None
    assert "failed in its Ray task" in result.reason and "not retried" in result.reason, result.reason
    assert "[OSError: disk full] after 3 s" in result.reason, result.reason
    assert "OSError: disk full" in (tmp_path / "A.log").read_text()
    card = driver.submission_card("bob.py", "bob", 1, [result], [], ["A.correct"])
    assert card["puzzles"]["A"]["criteria"]["correct"]["status"] == "failed"


@pytest.mark.parametrize("args, message", [
    (["a.py", "--ray", "--jobs", "2"], "--jobs and --gpus are for a run on this host"),
    (["a.py", "--gpus", "0", "--ray"], "--jobs and --gpus are for a run on this host"),
    (["--ray", "tests/broken/a_wrong_shape.py"], "put --ray after the submissions"),
])
def test_options_that_do_not_go_with_ray_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        driver.main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(SystemExit, match=r'pip install "unsloth-puzzle-grader\[cluster\]"'):
        cluster.import_ray()

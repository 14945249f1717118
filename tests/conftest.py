"""The grader's own tests run the real plugin in subprocesses through pytester."""

from __future__ import annotations

import os
from typing import Iterator

import pytest
import torch

from grader.batch import threads

pytest_plugins = ["pytester", "tests.ordering"]


@pytest.fixture(scope="session", autouse=True)
def cores_shared_between_workers() -> Iterator[None]:
    """Under pytest-xdist, each worker, and every grading, box and batch worker its tests start, uses the worker's
    share of the cores (`grader.batch.threads`): on two cores with -n 2, one thread each. Unset otherwise, and kept
    where the environment sets OMP_NUM_THREADS."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers == 1 or threads.VARIABLE in os.environ:
        yield
        return
    before, share = torch.get_num_threads(), threads.share(workers)
    torch.set_num_threads(share)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(threads.VARIABLE, str(share))
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def grader_caches_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every grading of one self-test session (all xdist workers) keeps the grader's caches in one fresh directory, as
    one user's gradings do in `~/.cache` (pytester gives each test a HOME of its own): C's oracle store
    (`grader.puzzle_c.oracle_store`) and the boxes' warm compile cache (`grader.box.compile_cache`)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "grader-cache"
    shared.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(shared))
        yield

"""Fixtures for puzzle C: the expensive training runs happen once per session (`grader.puzzle_c.run`);
tests read slices of the `CRun` they leave."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from grader.plugins.runtime import criterion_of
from grader.puzzle_c.run import CRun, execute


@pytest.fixture(scope="session")
def compile_qlora(submission: Any) -> Any:
    """The box that runs the submission's `compile_qlora(model)` (`grader.box.client.Box`)."""
    return submission.require("C")


def _graded(session: pytest.Session) -> frozenset[str]:
    return frozenset(crit[1] for item in session.items if (crit := criterion_of(item)) and crit[0] == "C")


@pytest.fixture(scope="session")
def _c_state() -> Iterator[None]:
    """Puzzle C's own RNG stream here in the judge (the oracle's training draws from it)."""
    import torch

    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        yield


@pytest.fixture(scope="session")
def c_run(request: pytest.FixtureRequest, compile_qlora: Any, device: Any, grader_seed: int, progress: Any,
          _c_state: None) -> CRun:
    """The oracle and noise-floor runs (if `C.correct` is selected) and the run through `compile_qlora` in its box;
    it knows the criteria graded, so that a crash is told once (`CRun.crash_holder`)."""
    graded = _graded(request.session)
    run = execute(compile_qlora, device=device, seed=grader_seed, progress=progress, oracle="correct" in graded,
                  probe_part_a="use_part_A" in graded)
    run.graded = graded
    return run

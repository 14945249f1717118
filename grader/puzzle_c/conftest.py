"""Fixtures for puzzle C: the expensive training runs happen once per session (`grader.puzzle_c.run`);
tests read slices of the `CRun` they leave."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from grader.judging.box_calls import open_box
from grader.judging.outcomes import grader_failed
from grader.plugins.runtime import criterion_of
from grader.puzzle_c.run import CRun, execute


@pytest.fixture(scope="session")
def compile_qlora(submission: Any) -> Any:
    """The box that runs the submission's `compile_qlora(model)` (`grader.box.client.Box`)."""
    return open_box(submission, "C")


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
          oracle_store: Path | None, record_peak: Any, _c_state: None) -> CRun:
    """The oracle and noise-floor runs (if `C.correct` is selected; from the oracle store when it holds them) and
    the run through `compile_qlora` in its box; it knows the criteria graded, so that a crash is told once
    (`CRun.crash_holder`). A box starved of memory by another process stops every C test as not measured
    (`grader.judging.outcomes.grader_failed`): the grading is incomplete, not the submission's."""
    from grader.puzzle_c.oracle_store import OracleStore

    graded = _graded(request.session)
    run = execute(compile_qlora, device=device, seed=grader_seed, progress=progress, oracle="correct" in graded,
                  probe_part_a="use_part_A" in graded,
                  store=OracleStore(oracle_store) if oracle_store is not None else None)
    run.graded = graded
    record_peak("one_off", run.one_off_peak_bytes)
    if run.starved:
        grader_failed(run.starved)
    return run

"""Fixtures for puzzle C: the expensive training runs happen once per session (`grader.puzzle_c.run`);
tests read slices of the `CRun` they leave."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from grader.runtime import criterion_of
from grader.puzzle_c.run import CRun, execute


@pytest.fixture(scope="session")
def compile_qlora(submission: Any) -> Callable[..., Any]:
    """The submission's `compile_qlora(model)`."""
    return submission.require("C")


def _selected(session: pytest.Session, criterion: str) -> bool:
    return any(criterion_of(item) == ("C", criterion) for item in session.items)


@pytest.fixture(scope="session")
def _c_state() -> Iterator[None]:
    """Puzzle C's own RNG stream, and dynamo's caches emptied after it. Its compiler config, default dtype and
    backend flags need nothing here: grader.guards gives each puzzle its own settings and puts them back."""
    import torch
    import torch._dynamo

    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        try:
            yield
        finally:
            torch._dynamo.reset()


@pytest.fixture(scope="session")
def c_run(request: pytest.FixtureRequest, compile_qlora: Callable[..., Any], submission: Any, device: Any,
          grader_seed: int, progress: Any, _c_state: None) -> CRun:
    """The oracle and noise-floor runs (if `C.correct` is selected) and the run through `compile_qlora`."""
    return execute(compile_qlora, submission, device=device, seed=grader_seed, progress=progress,
                   oracle=_selected(request.session, "correct"),
                   probe_part_a=_selected(request.session, "use_part_A"))

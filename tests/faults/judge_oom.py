"""`-p tests.faults.judge_oom`: puzzle C's noise floor, the judge's own work, runs out of memory (as it did on a GPU
shared with other gradings). The oracle store is off, so that the floor runs here."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest


def _out_of_memory(*args: Any, **kwargs: Any) -> NoReturn:
    import torch

    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1024.00 MiB (simulated by "
                                 "tests/faults/judge_oom.py in the judge's noise floor)")


def pytest_configure(config: pytest.Config) -> None:
    from grader.puzzle_c import run

    config.option.oracle_store = "none"
    run._train_noise_floor = _out_of_memory

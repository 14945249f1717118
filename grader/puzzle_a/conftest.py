"""Fixtures for puzzle A."""

from __future__ import annotations

from typing import Any

import pytest

from grader.judging.box_calls import open_box
from grader.judging.profiles import DEFAULT_PROFILE


@pytest.fixture(scope="session")
def a_box(submission: Any) -> Any:
    """The box that runs the submission's `dequantize_nf4(weight, quant_state)` (`grader.box.client.Box`)."""
    return open_box(submission, "A")


@pytest.fixture(scope="session")
def max_numel(device: Any, hypothesis_profile: str) -> int:
    """The largest weight drawn on this device (`grader.puzzle_a.strategies.GPU_MAX_NUMEL`, `CPU_MAX_NUMEL`)."""
    from grader.puzzle_a.strategies import CPU_MAX_NUMEL, GPU_MAX_NUMEL  # torch: not in an isolated run's controller

    if device.type == "cuda":
        return GPU_MAX_NUMEL
    return CPU_MAX_NUMEL.get(hypothesis_profile, CPU_MAX_NUMEL[DEFAULT_PROFILE])

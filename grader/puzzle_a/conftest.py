"""Fixtures for puzzle A."""

from __future__ import annotations

from typing import Any

import pytest

from grader.judging.profiles import CPU_MAX_NUMEL, DEFAULT_PROFILE

# Largest weight Hypothesis draws on a GPU; on a CPU (the interpreter pays per program instance) it follows
# the Hypothesis profile (grader.judging.profiles.CPU_MAX_NUMEL).
GPU_MAX_NUMEL = 1 << 25


@pytest.fixture(scope="session")
def dequantize_nf4(submission: Any) -> Any:
    """The box that runs the submission's `dequantize_nf4(weight, quant_state)` (`grader.box.client.Box`)."""
    return submission.require("A")


@pytest.fixture(scope="session")
def max_numel(device: Any, hypothesis_profile: str) -> int:
    """The largest weight drawn on this device."""
    if device.type == "cuda":
        return GPU_MAX_NUMEL
    return CPU_MAX_NUMEL.get(hypothesis_profile, CPU_MAX_NUMEL[DEFAULT_PROFILE])

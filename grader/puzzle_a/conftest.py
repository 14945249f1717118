"""Fixtures for puzzle A."""

from __future__ import annotations

from typing import Any, Callable

import pytest

# Largest weight Hypothesis draws: the interpreter pays per program instance and bitsandbytes' CPU
# dequantization compiles per shape, so the CPU bound is smaller.
MAX_NUMEL = {"cuda": 1 << 25, "cpu": 1 << 20}


@pytest.fixture(scope="session")
def dequantize_nf4(submission: Any) -> Callable[..., Any]:
    """The submission's `dequantize_nf4(weight, quant_state)`."""
    return submission.require("A")


@pytest.fixture(scope="session")
def max_numel(device: Any) -> int:
    """The largest weight drawn on this device."""
    return MAX_NUMEL[device.type]


@pytest.fixture(scope="session")
def interpreted(device: Any) -> bool:
    """True when kernels run in the Triton interpreter (no GPU)."""
    return device.type != "cuda"

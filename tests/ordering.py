"""The self-tests' order: tests that mostly wait out a deadline (`@pytest.mark.waits(seconds)`) start first, longest
first, so that their waits overlap the other xdist workers' CPU work instead of ending the run alone (the 2-core
run of 2026-12-07 spent its last two minutes with the CPU idle, one worker waiting). Every other test keeps its
collection order; the order is the same in every worker, as pytest-xdist requires."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "waits(seconds): a self-test that mostly waits out a deadline of about this "
                                       "long (tests/ordering.py starts it first)")


def _waits(item: pytest.Item) -> float:
    mark = item.get_closest_marker("waits")
    return float(mark.args[0]) if mark else 0.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Waiting tests first, longest wait first; the rest as collected (a stable sort)."""
    items.sort(key=lambda item: -_waits(item))

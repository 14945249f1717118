"""How a test says that its criterion could not be measured, or that its puzzle was not attempted."""

from __future__ import annotations

import pytest

NOT_MEASURED = "not measured: "
NOT_ATTEMPTED = "not attempted: "


def not_measured(reason: str) -> None:
    """Stop this test and report its criterion as not measured here (never as passed)."""
    pytest.skip(NOT_MEASURED + reason)


def not_attempted(reason: str) -> None:
    """Stop this test: the submission does not provide the puzzle."""
    pytest.skip(NOT_ATTEMPTED + reason)

"""D.VRAM_50_percent_reduction: peak memory at the puzzle size, at most half the naive full-logit version's."""

from __future__ import annotations

import pytest


@pytest.mark.criterion("D", "VRAM_50_percent_reduction")
def test_peak_memory_at_most_half_of_naive(puzzle_memory, criterion_name, criterion_detail, criterion_data):
    """Cross-entropy, forward + backward, the submission's own chunk size, against the naive version."""
    memory, where = puzzle_memory("ce")
    verdict = memory.judge("cross-entropy", where)
    criterion_detail(verdict.summary, memory.ratio)
    criterion_data(peaks={"cross-entropy": verdict.data})
    assert verdict.passed, f"{criterion_name}: {verdict.message()}"

"""D.VRAM_50_percent_reduction: peak memory at the puzzle size, at most half the naive full-logit version's."""

from __future__ import annotations

import pytest


@pytest.mark.criterion("D", "VRAM_50_percent_reduction")
def test_peak_memory_at_most_half_of_naive(puzzle_memory):
    """Cross-entropy, forward + backward, the submission's own chunk size, against the naive version."""
    puzzle_memory("ce", "cross-entropy")

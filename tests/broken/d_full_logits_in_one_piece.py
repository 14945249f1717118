"""Broken D: ignores chunk_size and runs the loss on all rows at once (the full logits, forward and backward)."""

from tests.broken._simple_d import make

memory_efficient_linear = make(one_piece=True)

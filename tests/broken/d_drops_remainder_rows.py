"""Broken D: drops the last rows when chunk_size does not divide them."""

from tests.broken._simple_d import make

memory_efficient_linear = make(drop_remainder=True)

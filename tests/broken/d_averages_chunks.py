"""Broken D: averages the chunk results instead of summing them."""

from tests.broken._simple_d import make

memory_efficient_linear = make(average=True)

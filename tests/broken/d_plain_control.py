"""The plain chunked version with no fault planted: the control for the broken D submissions."""

from tests.broken._simple_d import make

memory_efficient_linear = make()

"""Broken A: decodes the absmax linearly from its byte instead of through the second-level code table."""

from tests.broken._simple_nf4 import make

dequantize_nf4 = make(linear_absmax=True)

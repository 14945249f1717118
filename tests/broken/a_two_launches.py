"""Broken A: correct, but decodes the absmax in a first kernel and the weights in a second."""

from tests.broken._simple_nf4 import make

dequantize_nf4 = make(two_launches=True)

"""Broken A: takes the low nibble first (bitsandbytes packs the first element in the high nibble)."""

from tests.broken._simple_nf4 import make

dequantize_nf4 = make(swap_nibbles=True)

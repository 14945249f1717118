"""Broken A: writes whole 64-element blocks only, so a partial last block is left unwritten."""

from tests.broken._simple_nf4 import make

dequantize_nf4 = make(whole_blocks_only=True)

"""Puzzle A: NF4 double dequantization, graded against bitsandbytes."""

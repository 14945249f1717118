"""Puzzle A: NF4 double dequantization, judged by the exact value and the roundings a correct evaluation may do."""

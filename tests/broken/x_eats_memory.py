"""Broken: puzzle A allocates host memory until none is left; its puzzle D is correct."""

from tests.broken._naive_d import memory_efficient_linear  # noqa: F401


def dequantize_nf4(weight, quant_state):
    hoard = []
    while True:
        hoard.append(bytearray(256 * 2**20))

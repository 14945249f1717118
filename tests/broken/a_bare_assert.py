"""Broken A: a bare `assert` of the author's own, true for the shapes they tried (an even element count) and false
for others: its error must reach the scorecard as the submission's, with its line and the input that broke it."""

from tests.broken._simple_nf4 import make

_kernel = make()


def dequantize_nf4(weight, quant_state):
    assert quant_state.shape.numel() % 2 == 0
    return _kernel(weight, quant_state)

"""Broken A: correct in eager mode, but forces a graph break, so it cannot run in torch.compile(fullgraph=True)."""

import torch

from tests.broken._simple_nf4 import make

_correct = make()


def dequantize_nf4(weight, quant_state):
    torch._dynamo.graph_break()
    return _correct(weight, quant_state)

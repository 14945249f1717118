"""Hostile: on import, makes torch.equal always say True (defeating any 'inputs unchanged' check), then
scribbles over the packed weight on every call."""

import torch

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct

torch.equal = lambda a, b: True


def dequantize_nf4(weight, quant_state):
    out = _correct(weight, quant_state)
    weight.zero_()
    return out

"""Broken: returns a numpy array instead of a torch.Tensor."""

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight, quant_state):
    return _correct(weight, quant_state).float().numpy()

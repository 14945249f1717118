"""Hostile: returns a tensor subclass that holds no result yet and computes it only when an operation reads it
(so a timer around the call measures nothing)."""

import torch

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


class Deferred(torch.Tensor):
    """Looks like the output; the real dequantization runs on first use."""

    @staticmethod
    def __new__(cls, weight, quant_state):
        shell = torch.Tensor._make_subclass(cls, torch.empty(quant_state.shape, dtype=quant_state.dtype))
        shell._pending = (weight, quant_state)
        return shell

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        args = tuple(_correct(*a._pending) if isinstance(a, Deferred) else a for a in args)
        return func(*args, **(kwargs or {}))


def dequantize_nf4(weight, quant_state):
    return Deferred(weight, quant_state)

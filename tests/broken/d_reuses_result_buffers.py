"""Broken D: the plain chunked version, but the loss is written into a buffer kept from one call to the next (one per
shape and dtype) and handed back: the right value each time, and the caller's earlier loss is overwritten by the
next call (the contract: every result is a new tensor)."""

import torch

from tests.broken._simple_d import make

_inner = make()
_buffers = {}


class _IntoKeptBuffer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loss):
        key = (loss.dtype, loss.device)
        if key not in _buffers:
            _buffers[key] = torch.empty_like(loss)
        return _buffers[key].copy_(loss)

    @staticmethod
    def backward(ctx, g):
        return g


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    return _IntoKeptBuffer.apply(_inner(X, linear, labels, forward_function, chunk_size))

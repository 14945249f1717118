"""Good D, written for a GPU only: the plain recompute-in-backward chunks, with the running loss kept on "cuda:0" (as
code written on a GPU box often does). On a GPU it is graded on its merits; on a CPU its criteria are not measured."""

import torch

from tests.broken._simple_d import make

_inner = make()


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    total = torch.zeros((), device="cuda:0")  # a CPU has no cuda:0
    return _inner(X, linear, labels, forward_function, chunk_size) + total.to(X.device)

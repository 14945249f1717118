"""Broken D: differentiates the chunks with respect to X only; weight and bias get no gradient."""

from tests.broken._simple_d import make

memory_efficient_linear = make(param_grads=False)

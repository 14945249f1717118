"""Broken D: backpropagates 1 instead of the gradient arriving from above the loss."""

from tests.broken._simple_d import make

memory_efficient_linear = make(use_upstream=False)

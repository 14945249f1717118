"""Broken D: runs the chunks under bfloat16 autocast, so the loss gets bfloat16-rounded logits."""

from tests.broken._simple_d import make

memory_efficient_linear = make(autocast_bf16=True)

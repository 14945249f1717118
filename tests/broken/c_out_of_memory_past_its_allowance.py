"""A C submission that asks for more memory than any honest compile of the model needs: 40 GiB at once, past the
allowance the README states (its own out-of-memory error is its verdict). Simulated: it raises the error CUDA gives
for that request rather than filling a card."""

from __future__ import annotations

import torch


def compile_qlora(model: torch.nn.Module) -> torch.nn.Module:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB. GPU 0 has a total capacity of "
                                 "79.19 GiB of which 38.50 GiB is free")

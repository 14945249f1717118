"""An honest C submission on a GPU that another process filled: its compile_qlora runs out of memory at once,
having used almost none itself (simulated: it raises the error CUDA gives, asking for 20 MiB). The grader must not
charge it: its criteria are not measured and the grading is incomplete."""

from __future__ import annotations

import torch


def compile_qlora(model: torch.nn.Module) -> torch.nn.Module:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of "
                                 "79.19 GiB of which 3.06 MiB is free (simulated: another process holds the GPU)")

"""Broken: runs out of device memory on every call (raised as torch does, so it can be tried on a CPU)."""

import torch


def dequantize_nf4(weight, quant_state):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB (GPU 0; 79.10 GiB total capacity)")

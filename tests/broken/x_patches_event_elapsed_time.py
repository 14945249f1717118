"""Hostile: on import, makes every CUDA event timing report a tenth of the real time."""

import torch

from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401

_real = torch.cuda.Event.elapsed_time
torch.cuda.Event.elapsed_time = lambda self, end: _real(self, end) / 10

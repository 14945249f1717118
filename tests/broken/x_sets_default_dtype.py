"""Leaky: on import, switches torch's default dtype to float64 and never switches it back."""

import torch

from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401

torch.set_default_dtype(torch.float64)

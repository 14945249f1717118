"""Leaky: on every call, turns on TF32 matmuls and cuDNN autotuning for the whole process."""

import torch

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight, quant_state):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    return _correct(weight, quant_state)

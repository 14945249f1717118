"""Hostile: on import, swaps the code of the grader's correctness judge in place (`judge.__code__`, which a check of
the function object's identity does not see) for one that finds no fault, then returns zeros. The judge runs in
another process than the submission: the swap changes a copy nobody consults."""

import importlib

import torch

_judge = importlib.import_module("grader.puzzle_a.standard").judge
_judge.__code__ = (lambda out, packed, quant_state, *, what, at=None: []).__code__


def dequantize_nf4(weight, quant_state):
    return torch.zeros(quant_state.shape, dtype=quant_state.dtype, device=weight.device)

"""Broken A: remembers outputs by the weight's data pointer, so an in-place rewrite goes unnoticed."""

from tests.broken._simple_nf4 import make

_correct = make()
_cache = {}


def dequantize_nf4(weight, quant_state):
    key = (weight.data_ptr(), weight.numel())
    if key not in _cache:
        _cache[key] = _correct(weight, quant_state)
    return _cache[key].clone()

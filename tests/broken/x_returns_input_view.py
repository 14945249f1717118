"""Hostile: grows the packed weight's storage and returns the result written into it (the output aliases an
input, so the caller's weight is destroyed and no new memory seems to be used)."""

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight, quant_state):
    out = _correct(weight, quant_state)
    storage = weight.untyped_storage()
    storage.resize_(max(storage.nbytes(), out.numel() * out.element_size()))
    alias = weight.new_empty(0).set_(storage, 0, (storage.nbytes(),)).view(out.dtype)[: out.numel()]
    alias.copy_(out.reshape(-1))
    return alias.view(out.shape)

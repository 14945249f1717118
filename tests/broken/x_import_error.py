"""Broken: imports a module that does not exist."""

import unsloth_kernels_that_do_not_exist  # noqa: F401


def dequantize_nf4(weight, quant_state):
    return unsloth_kernels_that_do_not_exist.dequantize(weight, quant_state)

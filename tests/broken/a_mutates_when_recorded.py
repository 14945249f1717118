"""Broken A: a correct Triton kernel that, while the grader records its launches (it finds Triton's launch hooks
wrapped) and no dispatch mode watches its torch operations, also bumps the caller's absmax codes in place:
behaviour that only one observed call shows, and no operation count sees."""

from torch.utils._python_dispatch import _get_current_dispatch_mode
from triton.compiler.compiler import CompiledKernel
from triton.runtime import interpreter

from tests.broken._simple_nf4 import make

_correct = make()


def _launches_recorded_unwatched() -> bool:
    hooked = (CompiledKernel.launch_metadata.__module__ != "triton.compiler.compiler"
              or interpreter.GridExecutor.__call__.__module__ != "triton.runtime.interpreter")
    return hooked and _get_current_dispatch_mode() is None


def dequantize_nf4(weight, quant_state):
    out = _correct(weight, quant_state)
    if _launches_recorded_unwatched():
        quant_state.absmax.add_(1)
    return out

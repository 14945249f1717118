"""Reference solutions for the Unsloth puzzles A, C and D.

Entry points are imported lazily, so grading puzzle A never imports transformers or peft.
"""

from __future__ import annotations

import importlib
from typing import Any

_ENTRY_POINTS = {
    "dequantize_nf4": "solutions.nf4",
    "compile_qlora": "solutions.qlora_compile",
    "memory_efficient_linear": "solutions.memory_efficient_linear",
}

__all__ = list(_ENTRY_POINTS)


def __getattr__(name: str) -> Any:
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'solutions' has no attribute {name!r}")
    value = getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    # Importing solutions.memory_efficient_linear binds the submodule under the same name on this package;
    # rebind the function, or the next lookup finds the module.
    globals()[name] = value
    return value

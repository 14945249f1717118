"""Hostile: looks for puzzle C's oracle store (its directory in GRADER_ORACLE_STORE, as the judge reads it, else the
default under the real home) and, when it finds a stored oracle there, says so by raising (a real cheat would load
the oracle's gradients and hand them back as its own); finding nothing, it compiles as the reference does. In the box
bubblewrap mounts an empty directory over the store, so it finds nothing."""

import os
from pathlib import Path

from solutions.qlora_compile import compile_qlora as _reference

STORE = Path(os.environ.get("GRADER_ORACLE_STORE") or "/root/.cache/unsloth-puzzle-grader/c-oracles")


def compile_qlora(model):
    found = sorted(p.name for p in STORE.glob("*.pt")) if STORE.is_dir() else []
    if found:
        raise RuntimeError(f"read the judge's oracle store: {found}")
    return _reference(model)

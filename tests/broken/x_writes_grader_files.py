"""Hostile: on import, tries to rewrite the grader's own rubric on disk (found through the import system) so that every
later grading in the installation runs a changed grader; then dequantizes correctly (bitsandbytes'). In the box the
filesystem is read-only: the write fails, the file is unchanged, and the next submission is graded as before."""

import importlib.util

from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401

try:
    with open(importlib.util.find_spec("grader.scoring.rubric").origin, "a") as _rubric:
        _rubric.write("\nPUZZLES['A'].rules = ()  # every rule gone: any A submission scores 0\n")
except OSError:
    pass

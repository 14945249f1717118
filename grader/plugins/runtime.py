"""Facts about the running pytest process that tests and the grader's plugins ask for: which criterion a test
decides, whether this run grades, whether it is a pytest-xdist worker, and the device it grades on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

GRADER_DIR = Path(__file__).resolve().parents[1]  # the `grader` package
_GRADING = pytest.StashKey[bool]()  # `is_grading_run`, once decided


def criterion_of(item: pytest.Item) -> tuple[str, str] | None:
    """The (puzzle, criterion) a test's `criterion` marker names, or None for an unmarked test."""
    marker = item.get_closest_marker("criterion")
    if marker is None:
        return None
    if len(marker.args) != 2:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.criterion(PUZZLE, NAME)")
    return marker.args[0], marker.args[1]


def is_grading_run(config: pytest.Config) -> bool:
    """Whether this run grades: it names a submission, or collects the grader's tests (`pytest grader/`, the
    default testpaths, `--pyargs grader`). Only then do the grader's plugins act: in any other test run in the
    same environment they register nothing and change nothing. Decided once per run (from its command line).
    """
    known = config.stash.get(_GRADING, None)
    if known is None:
        known = config.stash[_GRADING] = _names_the_grader(config)
    return known


def _names_the_grader(config: pytest.Config) -> bool:
    if config.getoption("submission"):
        return True
    args = [a for a in config.args if not a.startswith("-")] or [str(config.rootpath / p)
                                                                    for p in config.getini("testpaths")]
    for arg in args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == GRADER_DIR or GRADER_DIR in path.parents or arg == "grader" or arg.startswith("grader."):
            return True
    return False


def is_xdist_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (which runs tests but neither scores nor prints)."""
    return hasattr(config, "workerinput")


def runs_side_by_side(config: pytest.Config) -> bool:
    """Whether other tests run at the same time as this process's (pytest-xdist with more than one worker)."""
    return is_xdist_worker(config) and int(config.workerinput.get("workercount", 1)) > 1


def choose_device() -> Any:
    """`cuda` when a GPU is present, else `cpu`."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


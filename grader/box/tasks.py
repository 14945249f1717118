"""What a runner can be asked to do: a registry of tasks, each a function `task(ctx, *args, **kwargs)` that runs in
the runner (beside the submission) and returns plain data (`grader.box.wire`'s replies).

Each puzzle's `tasks.py` registers its own (`@task("A.call")`); the runner imports the one of its puzzle. The
generic ones here keep, fetch and drop objects between tasks.
"""

from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from grader.box.interpreter import limitation
from grader.box.submission import Loaded
from grader.judging.progress import Progress

TASKS: dict[str, Callable[..., Any]] = {}
PUZZLE_TASKS = {"A": "grader.puzzle_a.tasks", "C": "grader.puzzle_c.tasks", "D": "grader.puzzle_d.tasks"}


def task(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a task under `name`."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        TASKS[name] = fn
        return fn
    return register


def load_puzzle_tasks(puzzle: str) -> None:
    """Register the tasks of `puzzle`."""
    importlib.import_module(PUZZLE_TASKS[puzzle])


@dataclass
class Context:
    """What a task may use: the loaded submission, the puzzle, the device, objects kept between tasks, progress."""

    submission: Loaded
    puzzle: str
    device: Any  # torch.device
    progress: Progress
    kept: dict[str, Any] = field(default_factory=dict)

    def entry(self, puzzle: str | None = None) -> Callable[..., Any]:
        """The entry point of `puzzle` (default: this runner's), with the call guards around it."""
        return self.submission.entry_point(puzzle or self.puzzle)


class SubmissionFault(Exception):
    """A task found the submission's result unusable (not what the contract says); the message says why."""


def raised_at(exc: BaseException, submission_files: tuple[str, ...]) -> tuple[traceback.FrameSummary | None, bool]:
    """Where `exc` was raised: the innermost frame it passed through that lies in the submission's files, else the
    innermost frame of all (None without any); and whether that frame is the submission's.

    The frames are its traceback's and, for an error torch.compile raised while tracing, dynamo's user stack
    (`real_stack`: the "from user code" frames it was tracing, which no traceback holds); then the same of each
    exception it was raised from (`__cause__`), innermost last."""
    frames: list[traceback.FrameSummary] = []
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        frames += traceback.extract_tb(link.__traceback__)
        frames += list(getattr(link, "real_stack", None) or [])
        link = link.__cause__
    own = [f for f in frames if any(f.filename == p or f.filename.startswith(p.rstrip("/") + "/")
                                    for p in submission_files)]
    where = own[-1] if own else (frames[-1] if frames else None)
    return where, bool(own)


def describe_error(exc: BaseException, submission_files: tuple[str, ...]) -> dict[str, Any]:
    """An exception as plain data: its type and message, where it was raised (`raised_at`: the submission's own
    frame if any), the last frames, and why a CPU cannot decide it (`grader.box.interpreter.limitation`) where that
    applies."""
    where, own = raised_at(exc, submission_files)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc)[:4000],
        "where": f"{Path(where.filename).name}:{where.lineno} in {where.name}" if where else "",
        "from_submission": own and not isinstance(exc, SubmissionFault),
        "fault": isinstance(exc, SubmissionFault),
        "traceback": text[-6000:],
        "undecidable": limitation(exc),
    }


@task("box.fetch")
def fetch(ctx: Context, name: str) -> Any:
    """The object kept under `name` as it is now (a tensor the submission returned earlier, say)."""
    return ctx.kept[name]


@task("box.drop")
def drop(ctx: Context, *names: str) -> None:
    """Forget objects kept under `names`."""
    for name in names:
        ctx.kept.pop(name, None)

"""One grading worker: a submission's puzzle graded by its own `pytest grader/puzzle_x` process, with its result
whatever happens to it (a crash, a kill, its time limit). `grader.batch.driver` runs workers on this host,
`grader.batch.cluster` as Ray tasks; both build scorecards from the `WorkerResult`s this module returns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from grader.batch import threads
from grader.batch.grading_command import grading_command
from grader.box.signals import describe_signal
from grader.scoring.rubric import PUZZLES, Outcome, score
from grader.scoring.scorecard import PuzzleCard

REPO = Path(__file__).resolve().parents[2]
TAIL_LINES = 15


@dataclass
class Job:
    """One worker: a submission's puzzle."""

    spec: str
    name: str
    puzzle: str


@dataclass
class WorkerResult:
    """What one worker left: its puzzle card (real or synthesized), exit status, time and failure reason."""

    job: Job
    card: dict[str, Any] | None
    exit_code: int | None
    seconds: float
    reason: str | None
    log: Path
    side_by_side: int | None = None  # the most gradings that shared its GPU while it ran (itself included)


def worker_command(job: Job, seed: int, score_json: Path, pytest_args: Sequence[str]) -> list[str]:
    """The pytest command line of one worker. The worker process is the isolation here (`--no-isolation`: no
    pytest-xdist worker inside it)."""
    spec = str(Path(job.spec).resolve()) if Path(job.spec).exists() or job.spec.endswith(".py") else job.spec
    return grading_command(spec, puzzles=(job.puzzle,), seed=seed, score_json=score_json, isolated=False,
                           extra=pytest_args)


def failed_card(puzzle: str, reason: str, criteria: Sequence[str]) -> dict[str, Any]:
    """The puzzle card of a worker that left no scorecard: its gates fail with `reason`, nothing else is measured."""
    p = PUZZLES[puzzle]
    names = [c.name for c in p.criteria if not criteria or f"{puzzle}.{c.name}" in criteria or c.kind == "gate"]
    outcomes = {n: Outcome("failed", detail=reason) if p.criterion(n).kind == "gate"
                else Outcome("not_measured", detail="not graded: the worker stopped (see the gate's reason)")
                for n in names}
    return PuzzleCard(puzzle, score(p, outcomes), outcomes).as_json()


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-TAIL_LINES:])


def run_worker(job: Job, seed: int, work: Path, timeout: float, pytest_args: Sequence[str],
               gpu: str | None, side_by_side: int = 1) -> WorkerResult:
    """Run one worker to its end or its time limit; never raises for anything the submission does. With
    `side_by_side` workers at most at once on this host, it gets its share of the cores (`grader.batch.threads`)."""
    work.mkdir(parents=True, exist_ok=True)
    score_json, log = work / f"{job.puzzle}.json", work / f"{job.puzzle}.log"
    score_json.unlink(missing_ok=True)
    env = threads.environment(side_by_side, dict(os.environ))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    start = time.monotonic()
    timed_out = False
    with log.open("w") as out:
        proc = subprocess.Popen(worker_command(job, seed, score_json, pytest_args), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group: its children go too
            rc = proc.wait()
    seconds = time.monotonic() - start
    card = None
    if score_json.exists():
        card = json.loads(score_json.read_text())
    entry = PUZZLES[job.puzzle].entry_point
    reason = None
    if timed_out:
        reason = f"exceeded the per-puzzle time limit of {timeout:g} s (--puzzle-timeout) and was stopped"
    elif rc < 0:
        reason = f"was killed by {describe_signal(-rc)}"
    elif card is None or job.puzzle not in card.get("puzzles", {}):
        reason = f"exited with status {rc} without grading the puzzle"
    if reason is not None:
        reason = (f"puzzle {job.puzzle}: the grading worker for {job.name}.{entry}() {reason} after {seconds:.0f} s; "
                  f"the puzzle scores 0. Last output:\n{_tail(log)}")
        card = None  # a scorecard from a worker that crashed or was stopped is not a complete grading
    return WorkerResult(job, card, None if timed_out else rc, seconds, reason, log)


def progress_line(done: int, total: int, r: WorkerResult) -> str:
    p = r.card["puzzles"][r.job.puzzle] if r.card is not None else None
    if p is None:
        verdict = "FAILED (" + (r.reason or "").split(" after ")[0].split(f"{r.job.name}.")[-1] + ")"
    elif not p["attempted"]:
        verdict = "not attempted"
    else:
        crit = p["criteria"].values()
        verdict = (f"{p['score']}/{p['max']}, {sum(c['status'] == 'passed' for c in crit)}/{len(crit)} criteria passed"
                   + {False: ", gate failed", None: ", incomplete: gate not decided"}.get(p["correct"], "")
                   + ("" if p.get("complete", True) or p["correct"] is None else ", incomplete: the grader failed"))
    shared = f", {r.side_by_side} side by side on its GPU" if r.side_by_side else ""
    return f"[{done}/{total}] {r.job.name} puzzle {r.job.puzzle}: {verdict} ({r.seconds:.0f} s{shared})"


def plan(work: Sequence[Job]) -> str:
    return (f"{len(dict.fromkeys(j.name for j in work))} submissions x puzzles "
            f"{','.join(dict.fromkeys(j.puzzle for j in work))}")



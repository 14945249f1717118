"""Grade on a Ray cluster: `python -m grader.batch SUBMISSIONS... --ray [ADDRESS]`.

One Ray task per (submission, puzzle), asking for one GPU where the cluster has GPUs, else one CPU. Each task
runs `grader.batch.worker.run_worker` (the same isolated pytest worker as a run on one host: same seed, same
per-puzzle time limit `--puzzle-timeout`, same crash and hang verdicts) in a scratch directory of the node it lands
on, and returns the worker's puzzle card, exit status, time, reason and the last `LOG_CAP` bytes of its log. The driver
writes the logs under `OUT/work/NAME/P.log` and builds the scorecards and the leaderboard exactly as a local run.

No shared filesystem is assumed. The grader checkout travels as Ray's runtime-env `working_dir` (`EXCLUDES`
left out; Ray also leaves out what `.gitignore` and `.rayignore` list, and refuses a package over its gRPC
message limit, 512 MiB); a module-name submission is imported from that copy. A submission's own file, or every
file of its package directory, travels as a task argument and is written into the scratch directory before
grading (a single file's neighbours do not travel: a submission that imports them is a package directory).

Progress: a task reports its start (node, GPU) to a small actor on the driver's node without waiting for it
(a task blocked in `ray.get` lends its CPU to another task); the driver drains the reports while it waits for
results and prints the `[start]` lines itself, then each `[k/N]` line as a task's result comes in. A task lost to a node or worker
failure is rerun once (`max_retries=1`; an error raised by the task's own code is not retried); a task that
still brings no result fails its puzzle's gate with the Ray error as the reason (`lost_result`).

Ray itself sets OMP_NUM_THREADS to the task's one CPU where the node's environment leaves it unset; the worker
inherits it (a local run's workers use every core each).
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from grader.batch.worker import REPO, Job, WorkerResult, plan, progress_line, run_worker
from grader.scoring.rubric import PUZZLES

LOG_CAP = 200_000
# gitignore patterns, relative to the checkout root (Ray's own defaults add .git, .venv, venv, __pycache__).
EXCLUDES = [".git", "__pycache__", "*.whl", "/.whl", "/out", "/build", "/dist", "/.diag", "/.hypothesis",
            "/.pytest_cache", "/.benchmarks", "*.egg-info"]
INSTALL_HINT = 'pip install "unsloth-puzzle-grader[cluster]"'


def import_ray() -> ModuleType:
    """The `ray` module, or a SystemExit saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SystemExit(f"grader.batch --ray needs Ray, which this Python does not have: {INSTALL_HINT} "
                         "(in the checkout: pip install -e \".[cluster]\")") from None
    return ray


def pack(spec: str) -> dict[str, bytes]:
    """The files of submission `spec` to ship, by path below its parent directory: a .py file, or every file of
    a package directory (bytecode caches left out); none for a module name or a path that does not exist."""
    path = Path(spec).resolve()
    if path.is_file():
        return {path.name: path.read_bytes()}
    if path.is_dir():
        return {str(f.relative_to(path.parent)): f.read_bytes() for f in sorted(path.rglob("*"))
                if f.is_file() and "__pycache__" not in f.relative_to(path).parts}
    return {}


def unpack(files: dict[str, bytes], dest: Path) -> str | None:
    """Write `pack`'s files under `dest`; the path of the submission they make, or None for no files."""
    for rel, data in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return str((dest / Path(next(iter(files))).parts[0]).resolve()) if files else None


class _Starts:
    """The actor that collects the tasks' start reports until the driver drains them."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str, str, list[str]]] = []

    def put(self, report: tuple[str, str, str, list[str]]) -> None:
        self.reports.append(report)

    def drain(self) -> list[tuple[str, str, str, list[str]]]:
        reports, self.reports = self.reports, []
        return reports


def _grade_task(job: Job, files: dict[str, bytes], seed: int, timeout: float, pytest_args: list[str],
                starts: Any) -> dict[str, Any]:
    """One Ray task: report the start, unpack the submission into a scratch directory, run the worker there."""
    import ray

    host, gpus = socket.gethostname(), [str(g) for g in ray.get_gpu_ids()]
    starts.put.remote((job.name, job.puzzle, host, gpus))  # not awaited: a lost report costs only its line
    with tempfile.TemporaryDirectory(prefix=f"grader-{job.name}-{job.puzzle}-") as scratch:
        spec = unpack(files, Path(scratch) / "submission")
        r = run_worker(Job(spec or job.spec, job.name, job.puzzle), seed, Path(scratch) / "work", timeout,
                             pytest_args, None)
        log = r.log.read_bytes()
    text = log[-LOG_CAP:].decode(errors="replace")
    if len(log) > LOG_CAP:
        text = f"[grader.batch.cluster: the first {len(log) - LOG_CAP} bytes of this log were left out]\n" + text
    return {"card": r.card, "exit_code": r.exit_code, "seconds": r.seconds, "reason": r.reason, "log": text,
            "spec": spec, "repo": str(REPO)}


def _localize(card: dict[str, Any] | None, paths: dict[str, str]) -> dict[str, Any] | None:
    """`card` with the node's paths (its checkout copy, its scratch submission) replaced by the driver's, so that
    its `reproduce` commands run here."""
    if card is None:
        return None
    text = json.dumps(card)
    for node, here in paths.items():
        text = text.replace(json.dumps(node)[1:-1], json.dumps(here)[1:-1])
    return json.loads(text)


def received(job: Job, got: dict[str, Any], log: Path) -> WorkerResult:
    """The WorkerResult of a task that returned: its log written to `log`, its card's paths made the driver's."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(got["log"])
    paths = {got["repo"]: str(REPO)}
    if got["spec"] is not None:
        paths[got["spec"]] = str(Path(job.spec).resolve())
    return WorkerResult(job, _localize(got["card"], paths), got["exit_code"], got["seconds"], got["reason"], log)


def lost_result(job: Job, error: BaseException, seconds: float, log: Path) -> WorkerResult:
    """The WorkerResult of a Ray task that brought no result (`ray.get` raised `error`): no card, and a reason
    naming the Ray error, which is also written to `log`. The puzzle's gate then fails with it."""
    from ray.exceptions import RayTaskError

    if isinstance(error, RayTaskError):
        cause = error.cause if error.cause is not None else error
        how = "failed in its Ray task (an error of the task's own code; not retried)"
        what = f"{type(cause).__name__}: {cause}"
    else:
        how = "was lost with its Ray task (a node, worker or Ray failure, not a verdict on the submission)"
        what = f"{type(error).__name__}: {error}"
    what = " ".join(what.split())[:300]
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"grader.batch.cluster: the Ray task grading {job.name} puzzle {job.puzzle} brought no result:\n"
                   f"{type(error).__name__}: {error}\n")
    reason = (f"puzzle {job.puzzle}: the grading worker for {job.name}.{PUZZLES[job.puzzle].entry_point}() {how} "
              f"[{what}] after {seconds:.0f} s; the puzzle scores 0. The Ray error is in {log}.")
    return WorkerResult(job, None, None, seconds, reason, log)


def _report_starts(starts: Any, started: dict[tuple[str, str], float]) -> None:
    import ray

    try:
        reports = ray.get(starts.drain.remote())
    except ray.exceptions.RayError:
        return  # the actor's node is gone: the [start] lines are lost, the results are not
    for name, puzzle, host, gpus in reports:
        again = " (rerun: the first attempt was lost)" if (name, puzzle) in started else ""
        started[(name, puzzle)] = time.monotonic()
        print(f"[start] {name} puzzle {puzzle} on {host}" + (f" GPU {','.join(gpus)}" if gpus else "") + again,
              flush=True)


def run_on_ray(work: Sequence[Job], *, address: str | None, timeout: float, seed: int, out: Path,
               pytest_args: Sequence[str]) -> list[WorkerResult]:
    """Run every worker as a Ray task on the cluster at `address` (None: `ray.init()`'s default: RAY_ADDRESS, a
    running local cluster, else a new local one), printing progress; one WorkerResult per job, in order."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address=address, runtime_env={"working_dir": str(REPO), "excludes": EXCLUDES})
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        nodes = sum(n["Alive"] for n in ray.nodes())
        print(f"grader.batch: {plan(work)} = {len(work)} Ray tasks on {nodes} node(s) with {gpus} GPUs, "
              f"{cpus} CPUs, one {'GPU' if gpus else 'CPU'} per task; grader seed {seed}; output in {out}",
              flush=True)
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        starts = ray.remote(_Starts).options(num_cpus=0, scheduling_strategy=here).remote()
        task = ray.remote(_grade_task).options(max_retries=1, retry_exceptions=False,
                                               **({"num_gpus": 1} if gpus else {"num_cpus": 1}))
        files = {spec: ray.put(pack(spec)) for spec in dict.fromkeys(job.spec for job in work)}  # once each
        pending = {task.remote(job, files[job.spec], seed, timeout, list(pytest_args), starts): i
                   for i, job in enumerate(work)}
        submitted = time.monotonic()
        started: dict[tuple[str, str], float] = {}
        results: dict[int, WorkerResult] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            _report_starts(starts, started)
            for ref in ready:
                i = pending.pop(ref)
                job = work[i]
                log = out / "work" / job.name / f"{job.puzzle}.log"
                try:
                    result = received(job, ray.get(ref), log)
                except ray.exceptions.RayError as exc:
                    since = started.get((job.name, job.puzzle), submitted)
                    result = lost_result(job, exc, time.monotonic() - since, log)
                results[i] = result
                print(progress_line(len(results), len(work), result), flush=True)
    finally:
        ray.shutdown()
    return [results[i] for i in range(len(work))]

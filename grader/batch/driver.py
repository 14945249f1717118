"""Grade many submissions into one leaderboard, each puzzle of each submission in its own worker process.

    python -m grader.batch SUBMISSION_OR_DIR... [--jobs N] [--gpus auto|none|0,1] [--puzzle X]
                           [--puzzle-timeout S] [--grader-seed N] [--out DIR] [-- PYTEST_ARGS...]
    python -m grader.batch SUBMISSION_OR_DIR... --ray [ADDRESS] [--puzzle X] ... [-- PYTEST_ARGS...]
    python -m grader.batch --merge DIR... --out DIR

Every (submission, puzzle) pair is one `pytest grader/puzzle_x --submission S --puzzle X` subprocess in its
own process group. A segfault, an abort, an out-of-memory kill or a hang (past `--puzzle-timeout`)
ends only that worker: the driver fails the puzzle's gate with the reason and the worker's last output,
and grades everything else. Each submission's scorecard is always written (`OUT/scorecards/NAME.json`),
then `OUT/leaderboard.json`, `OUT/leaderboard.md` and `OUT/leaderboard.html` (with a page per submission,
`OUT/scorecards/NAME.html`). All workers share one grader seed.

On a host with GPUs, each worker is bound to one GPU through CUDA_VISIBLE_DEVICES, and as many share a GPU as its
memory holds by each puzzle's measured footprint (grader.batch.packing), at most `--jobs` on the host. `--ray` runs the same workers as Ray tasks on a cluster instead (grader.batch.cluster).
`--merge` joins the output directories of several runs (other machines, say) into one leaderboard.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from grader.batch import threads
from grader.batch.packing import GpuPacker, run_packed
from grader.batch.worker import Job, WorkerResult, failed_card, plan, progress_line, run_worker, worker_command
from grader.judging.profiles import DEFAULT_PROFILE
from grader.report.pages import write_leaderboard_pages
from grader.scoring.results import reproduce_command
from grader.scoring.rubric import PUZZLES
from grader.scoring.scorecard import leaderboard_markdown, scorecard_json, write_json


def expand(specs: Sequence[str]) -> list[str]:
    """Submissions named by `specs`: a directory without `__init__.py` stands for its `*.py` files and packages
    (names starting with `_` or `.` left out); anything else, a missing path included, is one submission."""
    out = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir() and not (path / "__init__.py").exists():
            entries = sorted(p for p in path.iterdir() if not p.name.startswith(("_", ".")))
            out += [str(p) for p in entries if (p.suffix == ".py" and p.is_file()) or (p / "__init__.py").exists()]
        else:
            out.append(spec)
    return out


def display_names(specs: Sequence[str]) -> list[str]:
    """Short unique names: the file stem (or module name), with the parent directory added on a clash."""
    stems = [Path(s).stem if s.endswith(".py") else Path(s).name or s for s in specs]
    out = []
    for spec, stem in zip(specs, stems):
        if stems.count(stem) > 1:
            stem = "_".join(Path(spec).with_suffix("").parts[-2:])
        out.append(stem)
    if len(set(out)) != len(out):
        raise SystemExit(f"grader.batch: two submissions share the name {sorted({n for n in out if out.count(n) > 1})}")
    return out


def detect_gpus() -> list[str]:
    """GPU ids to bind workers to: CUDA_VISIBLE_DEVICES if set, else those `nvidia-smi -L` lists, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.stdout.splitlines() if l.startswith("GPU "))]


def _option_values(args: Sequence[str], option: str) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith(option + "="):
            values.append(arg.split("=", 1)[1])
    return values


def submission_card(spec: str, name: str, seed: int, results: list[WorkerResult], pytest_args: Sequence[str],
                    criteria: Sequence[str]) -> dict[str, Any]:
    """One submission's scorecard, merged from its puzzles' workers (a synthesized card for a worker that died)."""
    puzzles, reproduce, workers = {}, {}, {}
    environment = profile = box = None
    given = _option_values(pytest_args, "--hypothesis-profile")  # what a worker that wrote no card ran with
    asked = given[-1] if given else DEFAULT_PROFILE
    for r in sorted(results, key=lambda r: r.job.puzzle):
        letter = r.job.puzzle
        if r.card is not None:
            puzzles[letter] = r.card["puzzles"][letter]
            environment, profile = environment or r.card["environment"], profile or r.card["hypothesis_profile"]
            box = box or r.card.get("box")
            reproduce[letter] = r.card["reproduce"]
        else:  # the command the worker ran, as a grading run would have written it
            puzzles[letter] = failed_card(letter, r.reason or "", criteria)
            args = worker_command(r.job, seed, r.log.with_suffix(".json"), pytest_args)[3:]
            reproduce[letter] = reproduce_command(args, seed, asked)
        workers[letter] = {"exit_code": r.exit_code, "seconds": round(r.seconds, 1), "reason": r.reason,
                           "log": str(r.log), "side_by_side": r.side_by_side,
                           "resources": (r.card or {}).get("resources")}
    return scorecard_json(submission=spec, grader_seed=seed, hypothesis_profile=profile, environment=environment,
                          reproduce=reproduce, puzzles=puzzles, box=box, name=name, workers=workers)


def write_leaderboard(cards: list[dict[str, Any]], out: Path) -> None:
    """`out/leaderboard.json` (every scorecard), `out/leaderboard.md` (the table) and `out/leaderboard.html` (the
    submissions x criteria matrix, each row linking to the submission's page, `out/scorecards/NAME.html`)."""
    seeds = sorted({c["grader_seed"] for c in cards})
    write_json(out / "leaderboard.json", {"grader_seeds": seeds, "submissions": cards})
    (out / "leaderboard.md").write_text(leaderboard_markdown(cards))
    write_leaderboard_pages(cards, out / "leaderboard.html")


def run_local(work: Sequence[Job], *, jobs: int, gpus: Sequence[str], timeout: float, seed: int, out: Path,
              pytest_args: Sequence[str], packer: GpuPacker | None = None) -> list[WorkerResult]:
    """Run every worker on this host, printing progress: on GPUs, as many at once as their memory holds by each
    puzzle's measured footprint (`grader.batch.packing`), at most `jobs`; without GPUs, `jobs` at a time."""
    if gpus and packer is None:
        packer = GpuPacker(list(gpus), jobs=jobs)
    slots: queue.Queue[None] = queue.Queue()
    for _ in range(jobs):
        slots.put(None)
    lock = threading.Lock()
    done: list[WorkerResult] = []
    how = f"by memory on GPUs {','.join(gpus)}, at most {jobs} at a time" if gpus else f"{jobs} at a time"
    if threads.VARIABLE not in os.environ:
        how += f", {threads.share(jobs)} CPU thread(s) each"
    print(f"grader.batch: {plan(work)} = {len(work)} workers, {how}; grader seed {seed}; output in {out}", flush=True)

    def on(job: Job, gpu: str | None) -> WorkerResult:
        with lock:
            print(f"[start] {job.name} puzzle {job.puzzle}" + (f" on GPU {gpu}" if gpu is not None else ""), flush=True)
        return run_worker(job, seed, out / "work" / job.name, timeout, pytest_args, gpu, side_by_side=jobs)

    def run(job: Job) -> WorkerResult:
        if packer is None:
            slots.get()
            try:
                result = on(job, None)
            finally:
                slots.put(None)
        else:
            result, placement = run_packed(packer, job.puzzle, lambda gpu: on(job, gpu), lambda r: r.card)
            result.side_by_side = placement.side_by_side
        with lock:
            done.append(result)
            print(progress_line(len(done), len(work), result), flush=True)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, work))


def grade_all(specs: Sequence[str], *, puzzles: Sequence[str], timeout: float, seed: int, out: Path,
              pytest_args: Sequence[str], jobs: int = 1, gpus: Sequence[str] = (),
              ray: str | None = None) -> list[dict[str, Any]]:
    """Grade every (submission, puzzle) pair, print progress, write scorecards and the leaderboard.

    The workers run on this host (`jobs`, `gpus`), or with `ray` set (an address, or "" for `ray.init()`'s
    default) one Ray task each on a cluster (grader.batch.cluster); the scorecards are built the same way from both.
    """
    criteria = _option_values(pytest_args, "--criterion")
    names = display_names(specs)
    work = [Job(spec, name, p) for spec, name in zip(specs, names) for p in puzzles]
    if ray is None:
        results = run_local(work, jobs=jobs, gpus=gpus, timeout=timeout, seed=seed, out=out,
                            pytest_args=pytest_args)
    else:
        from grader.batch.cluster import run_on_ray

        results = run_on_ray(work, address=ray or None, timeout=timeout, seed=seed, out=out,
                             pytest_args=pytest_args)
    cards = []
    for spec, name in zip(specs, names):
        card = submission_card(spec, name, seed, [r for r in results if r.job.name == name], pytest_args, criteria)
        write_json(out / "scorecards" / f"{name}.json", card)
        cards.append(card)
    write_leaderboard(cards, out)
    print(f"grader.batch: leaderboard written to {out / 'leaderboard.md'}, {out / 'leaderboard.json'} and "
          f"{out / 'leaderboard.html'}", flush=True)
    return cards


def merge(dirs: Sequence[str], out: Path) -> list[dict[str, Any]]:
    """Join the scorecards of several batch output directories into one leaderboard in `out`."""
    cards: dict[str, dict[str, Any]] = {}
    for d in dirs:
        found = sorted(Path(d).glob("scorecards/*.json"))
        if not found:
            raise SystemExit(f"grader.batch --merge: {d} holds no scorecards/*.json")
        for path in found:
            card = json.loads(path.read_text())
            if card["name"] in cards:
                print(f"grader.batch --merge: {card['name']} appears twice; keeping the one from {d}", flush=True)
            cards[card["name"]] = card
    merged = list(cards.values())
    for card in merged:
        write_json(out / "scorecards" / f"{card['name']}.json", card)
    write_leaderboard(merged, out)
    print(f"grader.batch: merged {len(merged)} scorecards from {len(dirs)} directories into {out / 'leaderboard.md'}",
          flush=True)
    return merged


class _Renamed(argparse.Action):
    """An option's former name, hidden from --help: still accepted for the new one, with a deprecation message on
    standard error."""

    def __init__(self, option_strings: list[str], dest: str, *, new_name: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new_name = new_name

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated; use {self.new_name}", file=sys.stderr, flush=True)
        setattr(namespace, self.dest, values)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (`python -m grader.batch`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python -m grader.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", nargs="*", help="submission files, package directories, module names, or "
                        "directories of submissions")
    parser.add_argument("--merge", nargs="+", metavar="DIR", help="merge the scorecards of earlier runs' --out "
                        "directories into one leaderboard (no grading)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="workers at a time at most (default: 4 per "
                        "GPU, else 1); on GPUs each puzzle's measured memory footprint decides how many share one")
    parser.add_argument("--gpus", default=None, help="auto (CUDA_VISIBLE_DEVICES or nvidia-smi; the default), "
                        "none, or ids like 0,1")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", help="run each worker as "
                        "a Ray task on the cluster at ADDRESS (HEAD:6379; without ADDRESS: RAY_ADDRESS, a running "
                        "local cluster, else a new local one); one GPU per task where the cluster has GPUs. Put it "
                        "after the submissions, or write --ray=ADDRESS")
    parser.add_argument("--puzzle", action="append", choices=sorted(PUZZLES), help="grade only this puzzle "
                        "(repeatable; default: those named by --criterion in the pytest args, else all)")
    parser.add_argument("--puzzle-timeout", type=float, default=3600.0, metavar="S",
                        help="seconds a puzzle's worker may run before it is stopped and the puzzle failed "
                        "(default: 3600)")
    parser.add_argument("--timeout-per-puzzle", dest="puzzle_timeout", type=float, default=argparse.SUPPRESS,
                        action=_Renamed, new_name="--puzzle-timeout", help=argparse.SUPPRESS)
    parser.add_argument("--grader-seed", type=int, default=None, help="one seed for every worker (default: random, "
                        "printed and recorded)")
    parser.add_argument("--out", default="out/batch", help="output directory (default: out/batch)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.merge:
        if args.submissions:
            parser.error("--merge takes output directories, not submissions")
        merge(args.merge, out)
        return 0
    if args.ray is not None and (args.jobs is not None or args.gpus is not None):
        parser.error("--jobs and --gpus are for a run on this host; with --ray the cluster schedules one task "
                     "per submission and puzzle, one GPU each where it has GPUs")
    if args.ray and (args.ray.endswith(".py") or Path(args.ray).exists()):
        parser.error(f"--ray took the submission {args.ray!r} for the cluster's address: put --ray after the "
                     "submissions, or write --ray=ADDRESS")
    if not args.submissions:
        parser.error("name at least one submission (or --merge DIR...)")
    for option in ("--submission", "--puzzle", "--grader-seed", "--score-json"):
        if _option_values(pytest_args, option):
            parser.error(f"{option} is the batch driver's to set: give it before `--` (--score-json: see --out)")
    specs = expand(args.submissions)
    if not specs:
        parser.error(f"no submissions found in {args.submissions}")
    criteria = _option_values(pytest_args, "--criterion")
    puzzles = args.puzzle or sorted({c.split(".")[0] for c in criteria if c.split(".")[0] in PUZZLES}) or sorted(PUZZLES)
    seed = args.grader_seed if args.grader_seed is not None else random.SystemRandom().randrange(2**31)
    if args.ray is not None:
        grade_all(specs, puzzles=puzzles, timeout=args.puzzle_timeout, seed=seed, out=out,
                  pytest_args=pytest_args, ray=args.ray)
        return 0
    gpus = ([] if args.gpus == "none" else detect_gpus() if args.gpus in (None, "auto") else args.gpus.split(","))
    jobs = args.jobs or (4 * len(gpus) if gpus else 1)  # on GPUs an upper bound: memory decides below it
    grade_all(specs, puzzles=puzzles, jobs=jobs, gpus=gpus, timeout=args.puzzle_timeout, seed=seed, out=out,
              pytest_args=pytest_args)
    return 0

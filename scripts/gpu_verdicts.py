"""Grade every submission of the verdict corpus (tests/expected/*.toml) and compare each verdict with the
expectation the CPU self-tests assert (`grader.scoring.expectations.mismatches`), on this machine's device. Meant for a
GPU, where the `expect_gpu` verdicts and the GPU-only fault cases apply:

    bash scripts/gpu_run.sh python3 scripts/gpu_verdicts.py --out $OUT/verdicts      # on the GPU machine

Each case is the command a user runs, `pytest grader/ --submission S --puzzle P [--criterion ...]`, isolated
as by default (the GPU faults need it), with the CPU self-tests' seed and the ci profile. Prints every mismatch,
writes `verdicts.json` (one row per case, with its scorecard) and ends with a short table; exits 1 on any mismatch.

`--jobs N` grades up to N cases at a time, packed on the GPUs by each puzzle's measured memory footprint as
`python -m grader.batch` packs them (`grader.batch.packing`). Cases graded on a timing (A's speedup) and the
GPU-fault submissions (they hog or break the device) still run alone, first, so no timing shares the device. The
table at the end gives, per case, its seconds, how many cases shared its GPU, the GPU memory its judge and its box
held at their peaks (and the judge's one-off, C's oracle, where it trained one), and `correct`'s value: its
largest deviation as a share of the tolerance (C and D).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from grader.batch.driver import detect_gpus
from grader.batch.grading_command import grading_command
from grader.batch.packing import GpuPacker, run_packed
from grader.scoring import expectations
from grader.scoring.rubric import PUZZLES
from grader.scoring.scorecard import write_json

REPO = Path(__file__).resolve().parent.parent
TIMED = {"speedup"}  # criteria judged by a timing, which a shared device would skew (peak memory is per process)
SEED = 20261125  # the CPU self-tests' seed (tests/verdicts.py), so both devices draw the same inputs


def grade(case: expectations.Case, out: Path, seed: int, gpu: str | None = None) -> tuple[int, dict, float]:
    """Run one case's grading (on `gpu` alone when given); its exit status, scorecard and seconds."""
    spec = str(REPO / case.submission) if case.submission.endswith(".py") else case.submission
    score = out / f"{case.id.replace(':', '_')}.json"
    cmd = grading_command(spec, puzzles=(case.puzzle,), seed=seed, score_json=score, criteria=case.qualified_criteria(),
                          profile="ci", extra=case.args)
    started = time.perf_counter()
    with open(out / f"{case.id.replace(':', '_')}.log", "w") as log:  # written as it goes: a cut-short call keeps it
        env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}))
        done = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    card = json.loads(score.read_text()) if score.exists() else {"environment": {}, "puzzles": {}}
    return done.returncode, card, time.perf_counter() - started


def runs_alone(case: expectations.Case) -> bool:
    """Whether a case must have the device to itself: it times something, or its submission harms the device."""
    graded = case.criteria or tuple(c.name for c in PUZZLES[case.puzzle].criteria)
    return bool(TIMED & set(graded)) or Path(case.submission).stem.startswith("x_gpu_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "verdicts")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("-k", dest="select", action="append", default=[],
                        help="only cases whose id contains this text (repeat for several)")
    parser.add_argument("--jobs", type=int, default=1, help="cases graded at a time (timing cases run alone)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    cases = [case for path in sorted((REPO / "tests" / "expected").glob("*.toml"))
             for case in expectations.load(path)
             if (not args.select or any(text in case.id for text in args.select)) and case.only != "cpu"]
    alone = [case for case in cases if runs_alone(case)]
    shared = [case for case in cases if not runs_alone(case)]
    rows = []

    def record(case: expectations.Case, code: int, card: dict, seconds: float, side_by_side: int = 1) -> None:
        problems = expectations.mismatches(card, case, exit_code=code) if card["puzzles"] else [
            f"{case.id}: no scorecard was written (exit {code})"]
        criteria = card["puzzles"].get(case.puzzle, {}).get("criteria", {})
        got = {n: c["status"] for n, c in criteria.items()}
        rows.append({"case": case.id, "kind": case.kind, "on_gpu": expectations.graded_on_gpu(card), "exit": code,
                     "seconds": round(seconds, 1), "side_by_side": side_by_side,
                     "resources": card.get("resources") or {}, "correct_used": criteria.get("correct", {}).get("value"),
                     "statuses": got, "mismatches": problems, "scorecard": card})
        print(f"[{len(rows)}/{len(cases)}] {case.id}: {'MISMATCH' if problems else 'as expected'} ({seconds:.0f} s)",
              flush=True)
        for line in problems:
            print("    ", line, flush=True)
        write_json(args.out / "verdicts.json", rows)  # after every case, so a run cut short keeps what it graded

    for case in alone:
        record(case, *grade(case, args.out, args.seed))
    gpus = detect_gpus()
    packer = GpuPacker(gpus, jobs=max(1, args.jobs)) if gpus else None

    def packed(case: expectations.Case) -> tuple[int, dict, float, int]:
        if packer is None:
            return (*grade(case, args.out, args.seed), 1)
        (code, card, seconds), placement = run_packed(packer, case.puzzle,
                                                      lambda gpu: grade(case, args.out, args.seed, gpu),
                                                      lambda graded: graded[1])
        return code, card, seconds, placement.side_by_side

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        running = {pool.submit(packed, case): case for case in shared}
        for done in as_completed(running):
            record(running[done], *done.result())
    bad = [r for r in rows if r["mismatches"]]
    gib = lambda r, part: f"{r['resources'][part] / 2**30:.1f}" if part in r["resources"] else "-"  # noqa: E731
    used = lambda r: f"{r['correct_used']:.3g}" if isinstance(r["correct_used"], (int, float)) else "-"  # noqa: E731
    print(f"\n{'case':<56} {'kind':<9} {'exit':>4} {'s':>5} {'side':>4} {'judge':>6} {'box':>6} {'oracle':>6} "
          f"{'used':>6}  verdict")
    for r in rows:
        print(f"{r['case']:<56} {r['kind']:<9} {r['exit']:>4} {r['seconds']:>5.0f} {r['side_by_side']:>4} "
              f"{gib(r, 'judge'):>6} {gib(r, 'box'):>6} {gib(r, 'one_off'):>6} {used(r):>6}  "
              f"{'MISMATCH' if r['mismatches'] else 'as expected'}")
    device = "GPU" if rows and rows[0]["on_gpu"] else "CPU"
    print(f"\n{len(rows) - len(bad)} of {len(rows)} cases as expected on {device}; {len(bad)} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

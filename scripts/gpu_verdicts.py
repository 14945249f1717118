"""Grade every submission of the verdict corpus (tests/expected/*.toml) and compare each verdict with the
expectation the CPU self-tests assert (`grader.expectations.mismatches`), on this machine's device. Meant for a
GPU, where the `expect_gpu` verdicts and the GPU-only fault cases apply:

    bash scripts/gpu_run.sh python3 scripts/gpu_verdicts.py --out $OUT/verdicts      # on the GPU machine

Each case is the command a user runs, `pytest grader/ --submission S --puzzle P [--criterion ...]`, isolated
as by default (the GPU faults need it), with the CPU self-tests' seed and the ci profile. Prints every mismatch,
writes `verdicts.json` (one row per case, with its scorecard) and ends with a short table; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from grader import expectations
from grader.report import write_json

REPO = Path(__file__).resolve().parent.parent
SEED = 20261125  # the CPU self-tests' seed (tests/verdicts.py), so both devices draw the same inputs


def grade(case: expectations.Case, out: Path, seed: int) -> tuple[int, dict, float]:
    """Run one case's grading; its exit status, scorecard and seconds."""
    spec = str(REPO / case.submission) if case.submission.endswith(".py") else case.submission
    score = out / f"{case.id.replace(':', '_')}.json"
    cmd = [sys.executable, "-m", "pytest", str(REPO / "grader"), "--rootdir", str(REPO), "-p", "no:cacheprovider",
           "-q", "--submission", spec, "--puzzle", case.puzzle, "--score-json", str(score), "--grader-seed", str(seed),
           "--hypothesis-profile", "ci", *(arg for c in case.qualified_criteria() for arg in ("--criterion", c)),
           *case.args]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    (out / f"{case.id.replace(':', '_')}.log").write_text(done.stdout + done.stderr)
    card = json.loads(score.read_text()) if score.exists() else {"environment": {}, "puzzles": {}}
    return done.returncode, card, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "verdicts")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("-k", dest="select", default="", help="only cases whose id contains this text")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    cases = [case for path in sorted((REPO / "tests" / "expected").glob("*.toml"))
             for case in expectations.load(path) if args.select in case.id and case.only != "cpu"]
    rows = []
    for i, case in enumerate(cases, 1):
        code, card, seconds = grade(case, args.out, args.seed)
        problems = expectations.mismatches(card, case, exit_code=code) if card["puzzles"] else [
            f"{case.id}: no scorecard was written (exit {code})"]
        got = {n: c["status"] for n, c in card["puzzles"].get(case.puzzle, {}).get("criteria", {}).items()}
        rows.append({"case": case.id, "kind": case.kind, "on_gpu": expectations.graded_on_gpu(card), "exit": code,
                     "seconds": round(seconds, 1), "statuses": got, "mismatches": problems, "scorecard": card})
        print(f"[{i}/{len(cases)}] {case.id}: {'MISMATCH' if problems else 'as expected'} ({seconds:.0f} s)", flush=True)
        for line in problems:
            print("    ", line, flush=True)
    write_json(args.out / "verdicts.json", rows)
    bad = [r for r in rows if r["mismatches"]]
    print(f"\n{'case':<64} {'kind':<9} {'exit':>4} {'s':>5}  verdict")
    for r in rows:
        print(f"{r['case']:<64} {r['kind']:<9} {r['exit']:>4} {r['seconds']:>5.0f}  "
              f"{'MISMATCH' if r['mismatches'] else 'as expected'}")
    device = "GPU" if rows and rows[0]["on_gpu"] else "CPU"
    print(f"\n{len(rows) - len(bad)} of {len(rows)} cases as expected on {device}; {len(bad)} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

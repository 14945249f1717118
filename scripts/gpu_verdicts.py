"""Grade every submission of the verdict corpus (tests/expected/*.toml) through `grader.batch` and compare each
verdict with the expectation the CPU self-tests assert (`grader.expectations.mismatches`), on this machine's
device. Meant for a GPU, where the `expect_gpu` verdicts apply:

    bash scripts/gpu_run.sh python3 scripts/gpu_verdicts.py --out $OUT/verdicts      # on the GPU machine

Cases that grade the same criteria of one puzzle with the same arguments share one batch run. Prints every
mismatch, writes `verdicts.json` (one row per case) and ends with a short table; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from grader import expectations
from grader.report import write_json

REPO = Path(__file__).resolve().parent.parent
SEED = 20261125  # the CPU self-tests' seed (tests/verdicts.py), so both devices draw the same inputs


def _batch(cases: list[expectations.Case], out: Path, seed: int, jobs: int) -> dict[str, dict]:
    """Run one batch over `cases` (one puzzle, one criteria list, one argument list); scorecards by case id."""
    first = cases[0]
    specs = [str(REPO / c.submission) if c.submission.endswith(".py") else c.submission for c in cases]
    pytest_args = [arg for c in first.qualified_criteria() for arg in ("--criterion", c)]
    cmd = [sys.executable, "-m", "grader.batch", *specs, "--puzzle", first.puzzle, "--out", str(out),
           "--grader-seed", str(seed), "--jobs", str(jobs), "--", "--hypothesis-profile", "ci", *pytest_args,
           *first.args]
    subprocess.run(cmd, cwd=REPO, check=True)
    cards = {}
    for case, spec in zip(cases, specs):
        name = Path(spec).stem if spec.endswith(".py") else spec
        cards[case.id] = json.loads((out / "scorecards" / f"{name}.json").read_text())
    return cards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "verdicts")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--jobs", type=int, default=1, help="workers at a time (one GPU: 1)")
    parser.add_argument("-k", dest="select", default="", help="only cases whose id contains this text")
    args = parser.parse_args(argv)

    groups: dict[tuple, list[expectations.Case]] = defaultdict(list)
    for path in sorted((REPO / "tests" / "expected").glob("*.toml")):
        for case in expectations.load(path):
            if args.select in case.id and case.only != "cpu":
                groups[(case.puzzle, case.criteria, case.args)].append(case)
    rows, started = [], time.perf_counter()
    for i, cases in enumerate(groups.values()):
        cards = _batch(cases, args.out / f"group-{i:02d}", args.seed, args.jobs)
        for case in cases:
            card = cards[case.id]
            worker = card.get("workers", {}).get(case.puzzle, {})
            problems = expectations.mismatches(card, case, exit_code=worker.get("exit_code"))
            got = {n: c["status"] for n, c in card["puzzles"].get(case.puzzle, {}).get("criteria", {}).items()}
            rows.append({"case": case.id, "kind": case.kind, "on_gpu": expectations.graded_on_gpu(card),
                         "statuses": got, "score": card["puzzles"].get(case.puzzle, {}).get("score"),
                         "mismatches": problems, "environment": card.get("environment")})
            for line in problems:
                print("MISMATCH", line, flush=True)
    write_json(args.out / "verdicts.json", rows)
    bad = [r for r in rows if r["mismatches"]]
    print(f"\n{'case':<62} {'kind':<9} {'score':>5}  verdict")
    for r in rows:
        print(f"{r['case']:<62} {r['kind']:<9} {str(r['score']):>5}  {'MISMATCH' if r['mismatches'] else 'as expected'}")
    device = "GPU" if rows and rows[0]["on_gpu"] else "CPU"
    print(f"\n{len(rows) - len(bad)} of {len(rows)} cases as expected on {device} "
          f"({time.perf_counter() - started:.0f} s); {len(bad)} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

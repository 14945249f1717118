"""Out of memory on a real GPU, caused by another process: puzzle C's reference graded while a neighbour holds all
but a few GiB of the card. Meant for the GPU machine, after the C corpus filled the oracle store:

    bash scripts/gpu_run.sh python3 scripts/c_gpu_oom.py --out $GRADER_LOGS/oom

Two gradings, each the user's command (`pytest grader/ --submission solutions --puzzle C --criterion C.correct`):
- `judge`: the oracle store off, the neighbour leaving `--judge-free` GiB: the judge's own eager oracle runs out of
  memory; `correct` must be not measured (the grader's failure), the run exit 6.
- `box`: the oracle loaded from the store (the judge needs no GPU memory for it), the neighbour leaving `--box-free`
  GiB: the submission's box runs out of memory well within its allowance; `correct` must be not measured, exit 6.
Prints one line per grading: exit status, `correct`'s status and detail, seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from grader.batch.grading_command import grading_command
from grader.scoring.scorecard import INCOMPLETE_EXIT_STATUS

SEED = 20261125  # scripts/gpu_verdicts.py's seed: the corpus run before this one stored the oracle for it
HOLD = Path(__file__).with_name("gpu_hold.py")


def grade_beside_a_neighbour(name: str, free_gib: float, out: Path, extra: list[str]) -> dict:
    """Grade C's reference on `C.correct` while another process leaves `free_gib` GiB of the GPU free."""
    hog = subprocess.Popen([sys.executable, str(HOLD), str(free_gib)], stdout=subprocess.PIPE, text=True)
    try:
        print(f"{name}: neighbour {hog.stdout.readline().strip()}", flush=True)
        score = out / f"{name}.json"
        cmd = grading_command("solutions", puzzles=("C",), seed=SEED, score_json=score, criteria=("C.correct",),
                              profile="ci", extra=extra)
        start = time.perf_counter()
        with open(out / f"{name}.log", "w") as log:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - start
    finally:
        hog.kill()
        hog.wait()
    card = json.loads(score.read_text()) if score.exists() else {}
    correct = card.get("puzzles", {}).get("C", {}).get("criteria", {}).get("correct", {})
    return {"name": name, "exit": code, "status": correct.get("status"), "grader_failure": correct.get("grader_failure"),
            "detail": correct.get("detail", "")[:400], "seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--judge-free", type=float, default=6.0, help="GiB the neighbour leaves for the judge case")
    parser.add_argument("--box-free", type=float, default=4.0, help="GiB the neighbour leaves for the box case")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [grade_beside_a_neighbour("judge", args.judge_free, args.out, ["--oracle-store", "none"]),
            grade_beside_a_neighbour("box", args.box_free, args.out, [])]
    (args.out / "oom.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"{r['name']}: exit {r['exit']}, correct {r['status']} (grader failure: {r['grader_failure']}), "
              f"{r['seconds']} s: {r['detail']}", flush=True)
    good = all(r["exit"] == INCOMPLETE_EXIT_STATUS and r["status"] == "not_measured" and r["grader_failure"]
               for r in rows)
    print("as expected" if good else "NOT as expected", flush=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())

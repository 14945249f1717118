#!/usr/bin/env bash
# Puzzle C's corpus graded side by side on one GPU, then out-of-memory caused by a neighbour (issue "Puzzle C on a
# shared GPU"). Run on the GPU machine through scripts/gpu_run.sh, in one or two calls on the same warm machine:
#   bash scripts/gpu_run.sh bash scripts/c_gpu_shared.sh corpus 540   # the C corpus, 4 at a time, packed by memory
#   bash scripts/gpu_run.sh bash scripts/c_gpu_shared.sh rest 540     # what the first call did not reach, then OOM
# LEAVE_GIB (optional) makes a larger card offer what an 80 GB one has free: a neighbour holds the rest.
# The oracle store is out/oracle-store in the checkout (ignored by git), so a second call on the same machine reuses
# it. nvidia-smi samples the card's used memory every 2 s into $GRADER_LOGS/smi-PART.csv.
set -uo pipefail
part=$1 limit=$2
export GRADER_ORACLE_STORE=$PWD/out/oracle-store
out=$GRADER_LOGS/verdicts
mkdir -p "$out"
jobs=() hold=
if [ -n "${LEAVE_GIB:-}" ]; then
  python3 scripts/gpu_hold.py "$LEAVE_GIB" > "$GRADER_LOGS/hold.txt" 2>&1 & hold=$!; jobs+=($hold)
  until grep -q holding "$GRADER_LOGS/hold.txt" 2>/dev/null; do sleep 1; done
  cat "$GRADER_LOGS/hold.txt"
fi
nvidia-smi --query-gpu=timestamp,memory.used,memory.total --format=csv -l 2 > "$GRADER_LOGS/smi-$part.csv" & jobs+=($!)
select=(-k C:)
if [ "$part" = rest ]; then
  # the C cases the first call has no row for
  mapfile -t select < <(python3 - "$out/verdicts.json" <<'PY'
import json, sys
from pathlib import Path
from grader.scoring import expectations
done = {r["case"] for r in json.loads(Path(sys.argv[1]).read_text())} if Path(sys.argv[1]).exists() else set()
for case in expectations.load(Path("tests/expected/C.toml")):
    if case.id not in done:
        print("-k"); print(case.id)
PY
)
fi
if [ "$part" = rest ]; then
  [ -n "$hold" ] && kill "$hold" 2>/dev/null  # c_gpu_oom.py holds the card its own way
  python3 scripts/c_gpu_oom.py --out "$GRADER_LOGS/oom" 2>&1 | tee "$GRADER_LOGS/oom.log"
fi
if [ "${#select[@]}" -gt 0 ]; then
  cp "$out/verdicts.json" "$out/verdicts-corpus.json" 2>/dev/null
  timeout "$limit" python3 scripts/gpu_verdicts.py "${select[@]}" --jobs 4 --out "$out" 2>&1 | tee "$GRADER_LOGS/verdicts-$part.log"
fi
kill "${jobs[@]}" 2>/dev/null
grep -h "judge's GPU peak\|loaded from the oracle store\|training it here" "$out"/*.log | sort | uniq -c | head -20

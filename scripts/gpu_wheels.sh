#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with what the GPU machine's image lacks, for scripts/gpu_run.sh to install:
# the shared offline wheels (bitsandbytes, the D baselines) and pytest-timeout (pure Python), which a
# grading run needs for its per-test time limit.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/offline-gpu-wheels.sh
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "pytest-timeout==2.4.0"
ls -l .whl

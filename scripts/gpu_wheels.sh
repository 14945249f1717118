#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with what the GPU machine's image lacks, for scripts/gpu_run.sh to install:
# the shared offline wheels (bitsandbytes, the D baselines), pytest-timeout (pure Python), which a
# grading run needs for its per-test time limit, and Debian's bubblewrap package, the box the submission runs in
# (scripts/gpu_run.sh unpacks it where the image has no bwrap).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/offline-gpu-wheels.sh
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "pytest-timeout==2.4.0"
(cd .whl && rm -f bubblewrap_*.deb && apt-get download -q bubblewrap 2>/dev/null)
ls -l .whl

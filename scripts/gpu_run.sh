#!/usr/bin/env bash
# Run on the lent GPU machine from the repository root: installs the carried wheels (made here first by
# scripts/gpu_wheels.sh; carry .whl), then runs whatever is passed (default: the A sweep and the A grader).
# Logs go to $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
python3 -c "import torch, triton, bitsandbytes, transformers, peft; print(torch.__version__, triton.__version__, bitsandbytes.__version__, transformers.__version__, peft.__version__)"
"$@"

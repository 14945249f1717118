#!/usr/bin/env bash
# Run on the lent GPU machine from the repository root: installs the carried wheels and bubblewrap (made here first
# by scripts/gpu_wheels.sh; carry .whl), then runs whatever is passed. Logs: whatever the command writes under
# $GRADER_LOGS (/tmp/grader-logs) is packed into $OUT/logs.tgz every 20 s and at the end, so a call stopped at its
# limit still returns what it did.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
if ! command -v bwrap >/dev/null && ls .whl/bubblewrap_*.deb >/dev/null 2>&1; then
  dpkg -x .whl/bubblewrap_*.deb /tmp/bubblewrap && export PATH=/tmp/bubblewrap/usr/bin:$PATH
fi
export PYTHONUNBUFFERED=1 GRADER_LOGS=${GRADER_LOGS:-/tmp/grader-logs}
mkdir -p "$GRADER_LOGS"
pack() { [ -n "${OUT:-}" ] && tar czf "$OUT/logs.tgz.tmp" -C "$(dirname "$GRADER_LOGS")" "$(basename "$GRADER_LOGS")" \
  && mv "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"; }
(while sleep 20; do pack; done) &
packer=$!
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
python3 -c "import torch, triton, bitsandbytes, transformers, peft; print(torch.__version__, triton.__version__, bitsandbytes.__version__, transformers.__version__, peft.__version__)"
echo "bwrap: $(command -v bwrap) $(bwrap --version 2>/dev/null)"
"$@"
status=$?
kill $packer 2>/dev/null
pack
exit $status

#!/usr/bin/env bash
# Install the grader and what it needs into the active Python (a venv is fine).
# Arguments name optional extras of pyproject.toml: `bash scripts/setup.sh cluster` adds Ray (grader.batch --ray),
# `browser` playwright and the system's chromium (the self-tests' browser test of the HTML report).
# torch is installed only when missing, so a GPU user's CUDA build stays; on a machine without an
# NVIDIA driver the CPU-only build is taken (set TORCH_SPEC to choose another, e.g. "torch==2.11.0").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "$PY" -m pip install -q "${TORCH_SPEC:-torch}"
  else
    "$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
  fi
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
system_install() {  # a system package by name, best effort (apt-get, else dnf)
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get install -y -q "$1" >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null 2>&1 \
      && $SUDO apt-get install -y -q "$1" >/dev/null 2>&1; } || true
  elif command -v dnf >/dev/null 2>&1; then
    $SUDO dnf install -y -q "$1" >/dev/null 2>&1 || true
  fi
}
# bubblewrap: the sandbox each submission runs in (grader.box). Without it grading still works, unboxed, and every
# scorecard says so; `--box bwrap` then refuses to grade.
if ! command -v bwrap >/dev/null 2>&1; then
  system_install bubblewrap
  command -v bwrap >/dev/null 2>&1 || echo "warning: bubblewrap (bwrap) could not be installed here: submissions will" \
    "run unboxed, and every scorecard will say so (install bubblewrap to box them)" >&2
fi
# chromium, with the `browser` extra (playwright): the self-tests open the HTML report in it (tests/test_html_report.py).
# The distribution's package, as playwright's own browser download is not used.
if [[ " $* " == *" browser "* ]] && ! command -v chromium >/dev/null 2>&1; then
  system_install chromium
  command -v chromium >/dev/null 2>&1 || echo "warning: chromium could not be installed here: the HTML report's" \
    "browser test will fail" >&2
fi
EXTRAS=$(IFS=,; echo "$*")
"$PY" -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
"$PY" -c "import torch, triton, bitsandbytes, transformers, peft, hypothesis; print('installed: torch', torch.__version__, '| triton', triton.__version__, '| bitsandbytes', bitsandbytes.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)" 2>&1 | grep -v "kernels-community"
"$PY" -c "from grader.box import sandbox; from grader.scoring.scorecard import box_line; print(box_line(sandbox.probe('auto').as_json()))"

#!/usr/bin/env bash
# Fill .whl-ray/ (ignored by git) with Ray for the GPU machine's image (Python 3.12), for the one-GPU Ray run:
#   bash scripts/gpu_ray_wheels.sh                       # here
#   (device run, carrying .whl-ray only: Ray and bitsandbytes together exceed the 64 MiB a call may carry, and
#    puzzle D needs no bitsandbytes)
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl-ray/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && python3 -m grader.batch solutions tests/broken/d_averages_chunks.py \
#        --puzzle D --ray --grader-seed 1234 --out $OUT/ray
# Ray's wheel (79 MB) is repacked without what grading never loads: ray/jars (the Java worker) and the
# dashboard's web client build; every other file, and a RECORD with their hashes, stays as Ray ships it.
# jsonschema and what it needs are the Ray requirements the image lacks (its package list: the device tool's KINDS.md).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qxF '/.whl-ray/' .git/info/exclude 2>/dev/null || echo '/.whl-ray/' >> .git/info/exclude
mkdir -p .whl-ray
RAY_VERSION=${RAY_VERSION:-2.60.0}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --platform any -d .whl-ray/full "ray==$RAY_VERSION" jsonschema jsonschema-specifications referencing rpds-py
mv .whl-ray/full/{jsonschema,referencing,rpds}*.whl .whl-ray/
python3 - .whl-ray/full/ray-*.whl .whl-ray <<'PY'
import base64, hashlib, sys, zipfile
from pathlib import Path

source, target = Path(sys.argv[1]), Path(sys.argv[2]) / Path(sys.argv[1]).name
DROPPED = ("ray/jars/", "ray/dashboard/client/build/")
with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
    record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
    rows = []
    for info in zin.infolist():
        if info.filename.startswith(DROPPED) or info.filename == record_name:
            continue
        data = zin.read(info)
        zout.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{info.filename},sha256={digest},{len(data)}")
    zout.writestr(record_name, "\n".join(rows + [f"{record_name},,"]) + "\n")
print(f"{target.name}: {source.stat().st_size / 2**20:.0f} MiB -> {target.stat().st_size / 2**20:.0f} MiB")
PY
rm -r .whl-ray/full
ls -l .whl-ray

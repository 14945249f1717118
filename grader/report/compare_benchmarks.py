"""Compare two pytest-benchmark JSON files, refusing when they were measured on different devices.

    python -m grader.compare_benchmarks BEFORE.json AFTER.json

The grader adds `machine_info["grader_environment"]` (device name, driver, torch, triton, bitsandbytes versions, CPU threads)
to every benchmark file it writes. Timings from different devices are not comparable: a mismatch of device
name exits with status 2 and says why; so does a file without the grader's environment. Otherwise each
benchmark present in both files is printed with both medians and their ratio.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

KEY = "grader_environment"


class Refused(Exception):
    """The files cannot be compared; the message says why."""


def environment(path: Path) -> dict[str, Any]:
    """The grader environment recorded in a benchmark file's machine_info."""
    data = json.loads(path.read_text())
    env = data.get("machine_info", {}).get(KEY)
    if not env or not env.get("device"):
        raise Refused(f"{path} has no machine_info[{KEY!r}]: it was not written by a grader run, so its device is "
                      "unknown")
    return env


def compare(before: Path, after: Path) -> list[str]:
    """Lines comparing the medians of the benchmarks both files hold; raises Refused across devices."""
    env_b, env_a = environment(before), environment(after)
    if env_b["device"] != env_a["device"]:
        raise Refused(f"refusing to compare timings from different devices: {before} ran on {env_b['device']!r}, "
                      f"{after} on {env_a['device']!r}")
    notes = [f"{k}: {env_b.get(k)} -> {env_a.get(k)}" for k in ("driver", "torch", "triton", "bitsandbytes", "cpu_threads")
             if env_b.get(k) != env_a.get(k)]
    medians = [{b["fullname"]: b["stats"]["median"] for b in json.loads(p.read_text())["benchmarks"]}
               for p in (before, after)]
    lines = [f"device: {env_b['device']}", *(f"versions differ, {n}" for n in notes)]
    for name in sorted(medians[0].keys() & medians[1].keys()):
        b, a = medians[0][name], medians[1][name]
        lines.append(f"{name}: median {b:.6g} s -> {a:.6g} s ({b / a:.3f}x)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        lines = compare(Path(args[0]), Path(args[1]))
    except Refused as exc:
        print(f"grader.compare_benchmarks: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0

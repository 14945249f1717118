"""What the box costs: a runner's start, and one `dequantize_nf4` call through the box (boxed and unboxed) against the
same call made directly in this process, on a small and a large weight. Prints a table; `--out` writes the JSON.

    python3 scripts/box_overhead.py [--submission solutions] [--calls 30] [--out box_overhead.json]

On a GPU the large weight is the notebook's largest (14336 x 4096, bf16: a 117 MB output through the box's files);
on a CPU, 2048 x 2048. Each figure is the median of `--calls` calls after two warm-up calls; the direct calls are
synchronised like the box's task (the caller's stream) so that both count the kernel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from grader.box import sandbox
from grader.box.client import Box
from grader.box.submission import load
from grader.puzzle_a import oracles
from grader.puzzle_a.strategies import WeightCase

REPO = Path(__file__).resolve().parent.parent


def _median_ms(fn, calls: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", default="solutions")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        from grader.box.interpreter import use_interpreter

        use_interpreter()
    big = (14336, 4096) if device.type == "cuda" else (2048, 2048)
    weights = {f"{a}x{b}": oracles.quantize(WeightCase((a, b), torch.bfloat16, 1.0, False, False, seed=1).make(device))
               for a, b in ((64, 64), big)}
    entry = load(args.submission, REPO).entry_point("A")

    def direct(q):
        def call():
            entry(q.weight, q.quant_state)
            if device.type == "cuda":
                torch.cuda.current_stream().synchronize()
        return call

    rows = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "submission": args.submission,
            "torch": torch.__version__, "calls": args.calls, "weights": {}}
    for name, q in weights.items():
        rows["weights"][name] = {"direct_ms": _median_ms(direct(q), args.calls)}
    for mode in ("bwrap", "none"):
        try:
            info = sandbox.probe(mode)
        except sandbox.BoxUnavailable as exc:
            print(f"{mode}: {exc}", file=sys.stderr)
            continue
        box = Box(puzzle="A", spec=args.submission, root=REPO, device=device.type, info=info, progress=None)
        start = time.perf_counter()
        box.describe()
        rows[f"start_s_{mode}"] = time.perf_counter() - start
        for name, q in weights.items():
            rows["weights"][name][f"{mode}_ms"] = _median_ms(
                lambda: box.run("A.call", q.weight, q.quant_state, deadline=120), args.calls)
        box.close()
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(f"device {rows['device']}, torch {rows['torch']}, submission {args.submission}, median of {args.calls} calls")
    print("runner start: " + ", ".join(f"{k.removeprefix('start_s_')} {v:.2f} s" for k, v in rows.items()
                                       if k.startswith("start_s_")))
    print(f"{'weight':<12} {'direct ms':>10} {'bwrap ms':>10} {'none ms':>10} {'box overhead ms':>16}")
    for name, r in rows["weights"].items():
        boxed = r.get("bwrap_ms", float("nan"))
        print(f"{name:<12} {r['direct_ms']:>10.2f} {boxed:>10.2f} {r.get('none_ms', float('nan')):>10.2f} "
              f"{boxed - r['direct_ms']:>16.2f}")


if __name__ == "__main__":
    main()

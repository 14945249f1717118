"""Puzzle D on a GPU at the puzzle size (bsz 4, qlen 4096, hd 4096, vocab 128256, bf16): peak memory and
forward+backward time of the naive full-logit loss, the reference at several chunk sizes, the plain
recompute-in-backward control, and Liger-Kernel / Cut Cross-Entropy when importable; loss and gradient
parity against the naive version. Writes JSON to $OUT (or the first argument) and prints a summary.

    python scripts/d_gpu_bench.py [OUT_DIR]
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader.measure.memory import cuda_peak  # noqa: E402
from grader.puzzle_d.losses import cross_entropy  # noqa: E402
from grader.puzzle_d.baselines import available_baselines  # noqa: E402
import solutions.memory_efficient_linear as reference  # noqa: E402
from solutions.memory_efficient_linear import memory_efficient_linear  # noqa: E402
from grader.submission import load  # noqa: E402

# The grader's plain, unbroken D control (a submission file, loaded as the grader loads one).
plain_control = load("tests/broken/d_plain_control.py", root=Path(__file__).resolve().parent.parent).entry_point("D")

B, T, H, V = 4, 4096, 4096, 128256
REPS, WARMUP = 10, 3


def with_group_budget(mib: int, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Run `fn` with the reference's weight-gradient group budget set to `mib` MiB (a tuning sweep)."""
    saved = reference._GROUP_BUDGET_BYTES
    reference._GROUP_BUDGET_BYTES = mib * 2**20
    try:
        return fn()
    finally:
        reference._GROUP_BUDGET_BYTES = saved


def main(out: Path) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    X = torch.randn(B, T, H, device=dev, dtype=torch.bfloat16, generator=g).requires_grad_(True)
    linear = torch.nn.Linear(H, V, bias=False, device=dev, dtype=torch.bfloat16)
    labels = torch.randint(0, V, (B, T), device=dev, generator=g)
    labels[:, :128] = -100
    loss_fn = cross_entropy(labels)

    def naive() -> torch.Tensor:
        return loss_fn(X.reshape(-1, H), linear, labels.reshape(-1))

    impls: dict[str, Callable[[], torch.Tensor]] = {"naive": naive}
    for chunk in (None, 1024, 2048):
        impls[f"reference chunk={chunk}"] = (lambda c=chunk: memory_efficient_linear(X, linear, labels, loss_fn, c))
    for chunk, group_mib in ((512, 512), (512, 1024), (256, 1024), (1024, 512)):
        impls[f"reference chunk={chunk} group={group_mib}MiB"] = (lambda c=chunk, g=group_mib: with_group_budget(
            g, lambda: memory_efficient_linear(X, linear, labels, loss_fn, c)))
    impls["plain control chunk=1024"] = lambda: plain_control(X, linear, labels, loss_fn, 1024)
    for name, fn in available_baselines().items():
        impls[name] = (lambda f=fn: f(X, linear, labels))

    def fwd_bwd(fn: Callable[[], torch.Tensor]) -> Callable[[object], None]:
        def run(_: object) -> None:
            fn().backward()
        return run

    def reset() -> None:
        X.grad = None
        linear.weight.grad = None

    def measure(name: str, fn: Callable[[], torch.Tensor], ref: tuple | None) -> dict:
        reset()
        peak = cuda_peak(lambda: reset(), fwd_bwd(fn))
        times = []
        for i in range(WARMUP + REPS):
            reset()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            loss = fn()
            loss.backward()
            end.record()
            torch.cuda.synchronize()
            if i >= WARMUP:
                times.append(start.elapsed_time(end))
        grads = (loss.detach().float(), X.grad.float(), linear.weight.grad.float())
        ref = ref or grads
        parity = [((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(grads, ref)]
        print(f"{name:32s} peak {peak.peak_gib:7.2f} GiB  median {statistics.median(times):8.2f} ms "
              f"(min {min(times):.2f}, max {max(times):.2f})  rel err vs naive loss/dX/dW "
              + " ".join(f"{p:.1e}" for p in parity), flush=True)
        return {"peak_GiB": round(peak.peak_gib, 3), "retained_GiB": round(peak.retained_bytes / 2**30, 3),
                "median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
                "max_ms": round(max(times), 2), "rel_err_vs_naive[loss,dX,dW]": [f"{p:.2e}" for p in parity],
                "grads": grads}

    results, ref_grads = {}, None
    for name, fn in impls.items():
        try:
            results[name] = measure(name, fn, ref_grads)
        except Exception as exc:  # one failing implementation must not cost the others' figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"{name:32s} ERROR {results[name]['error']}", flush=True)
            continue
        if ref_grads is None:
            ref_grads = results[name].pop("grads")
        results[name].pop("grads", None)
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "reps": REPS, "warmup": WARMUP,
           "shape": {"bsz": B, "qlen": T, "hidden": H, "vocab": V, "dtype": "bfloat16"},
           "inputs_GiB": round((X.numel() * 2 + linear.weight.numel() * 2) / 2**30, 3)}
    try:
        import triton
        env["triton"] = triton.__version__
    except ImportError:
        pass
    out.mkdir(parents=True, exist_ok=True)
    (out / "d_gpu_bench.json").write_text(json.dumps({"environment": env, "results": results}, indent=2) + "\n")
    print(json.dumps(env))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "out")))

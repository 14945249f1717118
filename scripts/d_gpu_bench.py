"""Puzzle D on a GPU at the puzzle size (bsz 4, qlen 4096, hd 4096, vocab 128256, bf16), forward + backward, for
three losses: token cross-entropy, cross-entropy with z-loss and logit soft-capping, and GRPO's per-token policy
loss. Per loss: peak memory above the inputs and time of the naive full-logit version, the reference (fused path,
the default; its first call, compilation included, timed apart), the reference held to its eager path, sweeps of
the fused chunk budget, and for cross-entropy the plain recompute-in-backward control, Liger-Kernel and Cut
Cross-Entropy when importable; loss and gradient parity against the naive version. Writes JSON to $OUT (or the
first argument) after every implementation and prints a summary table last.

    python scripts/d_gpu_bench.py [OUT_DIR]
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader.box.submission import load  # noqa: E402
from grader.measure.memory import cuda_peak  # noqa: E402
from grader.puzzle_d.baselines import available_baselines  # noqa: E402
from grader.puzzle_d.losses import ForwardFunction, cross_entropy, grpo  # noqa: E402
import solutions.memory_efficient_linear as reference  # noqa: E402
from solutions.memory_efficient_linear import memory_efficient_linear  # noqa: E402

# The grader's plain, unbroken D control (a submission file, loaded as the grader loads one).
plain_control = load("tests/broken/d_plain_control.py", root=Path(__file__).resolve().parent.parent).entry_point("D")

B, T, H, V = 4, 4096, 4096, 128256
REPS, WARMUP = 10, 3
FUSED_BUDGETS_MIB = (256, 512, 2048)  # beside the default (reference._FUSED_BUDGET_BYTES); for cross-entropy
SWEPT = {"cross-entropy": FUSED_BUDGETS_MIB, "GRPO": (2048,)}


@contextlib.contextmanager
def constant(name: str, value: object) -> Iterator[None]:
    """The reference's module constant `name` set to `value` for the duration (a tuning sweep)."""
    saved = getattr(reference, name)
    setattr(reference, name, value)
    try:
        yield
    finally:
        setattr(reference, name, saved)


def with_constant(name: str, value: object, fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """`fn` run with the reference's constant `name` set to `value`."""
    def run() -> torch.Tensor:
        with constant(name, value):
            return fn()
    return run


def losses(dev: torch.device, g: torch.Generator) -> dict[str, tuple[torch.Tensor, ForwardFunction]]:
    """name -> (labels, forward function) at the puzzle size."""
    tokens = torch.randint(0, V, (B, T), device=dev, generator=g)
    tokens[:, :128] = -100
    batch = torch.stack([torch.randint(0, V, (B, T), device=dev, generator=g).float(),
                         torch.randn(B, T, device=dev, generator=g),
                         -5 + 0.1 * torch.randn(B, T, device=dev, generator=g),
                         -5 + 0.1 * torch.randn(B, T, device=dev, generator=g),
                         (torch.rand(B, T, device=dev, generator=g) < 0.9).float()], dim=-1)
    return {"cross-entropy": (tokens, cross_entropy(tokens)),
            "CE + z-loss 1e-4 + softcap 30": (tokens, cross_entropy(tokens, z_loss=1e-4, softcap=30.0)),
            "GRPO": (batch, grpo(batch))}


def implementations(loss_name: str, X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor,
                    loss_fn: ForwardFunction) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> a zero-argument forward returning the loss, for one loss; the naive version first."""
    def naive() -> torch.Tensor:
        rows = X.reshape(-1, H)
        return loss_fn(rows, linear, labels.reshape(rows.shape[0], *labels.shape[2:]))

    def ref(chunk: int | None = None) -> torch.Tensor:
        return memory_efficient_linear(X, linear, labels, loss_fn, chunk)

    impls: dict[str, Callable[[], torch.Tensor]] = {"naive": naive, "reference": ref}
    impls["reference, eager path"] = with_constant("_FUSED_DEVICES", frozenset(), ref)
    for mib in SWEPT.get(loss_name, ()):
        impls[f"reference, fused budget {mib} MiB"] = with_constant("_FUSED_BUDGET_BYTES", mib * 2**20, ref)
    if loss_name == "cross-entropy":
        impls["plain control chunk=1024"] = lambda: plain_control(X, linear, labels, loss_fn, 1024)
        for name, fn in available_baselines().items():
            impls[name] = (lambda f=fn: f(X, linear, labels))
    return impls


def measure(fn: Callable[[], torch.Tensor], X: torch.Tensor, linear: torch.nn.Linear,
            ref: tuple[torch.Tensor, ...] | None) -> tuple[dict, tuple[torch.Tensor, ...]]:
    """Cold call (compilation included), peak memory, CUDA-event times and parity of one implementation."""
    def reset() -> None:
        X.grad = None
        linear.weight.grad = None

    reset()
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn().backward()
    torch.cuda.synchronize()
    cold_s = time.perf_counter() - start
    reset()
    peak = cuda_peak(lambda: reset(), lambda _: fn().backward())
    times = []
    for i in range(WARMUP + REPS):
        reset()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        loss = fn()
        loss.backward()
        end.record()
        torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(begin.elapsed_time(end))
    grads = (loss.detach().float(), X.grad.float(), linear.weight.grad.float())
    ref = ref or grads
    parity = [((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(grads, ref)]
    return ({"peak_GiB": round(peak.peak_gib, 3), "retained_GiB": round(peak.retained_bytes / 2**30, 3),
             "median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
             "max_ms": round(max(times), 2), "cold_call_s": round(cold_s, 2),
             "rel_err_vs_naive[loss,dX,dW]": [f"{p:.2e}" for p in parity]}, grads)


def environment(X: torch.Tensor, linear: torch.nn.Linear) -> dict:
    """Card, versions, date and protocol of this run."""
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "reps": REPS, "warmup": WARMUP,
           "shape": {"bsz": B, "qlen": T, "hidden": H, "vocab": V, "dtype": "bfloat16"},
           "inputs_GiB": round((X.numel() * 2 + linear.weight.numel() * 2) / 2**30, 3)}
    for package in ("triton", "liger_kernel", "cut_cross_entropy"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version
            env[package] = version(package.replace("_", "-"))
    return env


def main(out: Path) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    X = torch.randn(B, T, H, device=dev, dtype=torch.bfloat16, generator=g).requires_grad_(True)
    linear = torch.nn.Linear(H, V, bias=False, device=dev, dtype=torch.bfloat16)
    report = {"environment": environment(X, linear), "results": {}}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for loss_name, (labels, loss_fn) in losses(dev, g).items():
        ref_grads = None
        results = report["results"].setdefault(loss_name, {})
        for name, fn in implementations(loss_name, X, linear, labels, loss_fn).items():
            try:
                results[name], grads = measure(fn, X, linear, ref_grads)
            except Exception as exc:  # one failing implementation must not cost the others' figures
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                print(f"{loss_name} | {name}: ERROR {results[name]['error']}", flush=True)
                continue
            ref_grads = ref_grads or grads
            r = results[name]
            if name == "reference":  # where its cold call went: dynamo's cumulative compile phases so far
                r["compile_times_so_far"] = torch._dynamo.utils.compile_times(repr="str", aggregate=True)
                print(r["compile_times_so_far"], flush=True)
            rows.append(f"| {loss_name} | {name} | {r['peak_GiB']:.2f} | {r['median_ms']:.2f} | {r['cold_call_s']:.1f} | "
                        + " / ".join(r["rel_err_vs_naive[loss,dX,dW]"]) + " |")
            print(rows[-1], flush=True)
            (out / "d_gpu_bench.json").write_text(json.dumps(report, indent=2) + "\n")
            torch.cuda.empty_cache()
    print(json.dumps(report["environment"]))
    print("| loss | implementation | peak GiB | median ms | cold call s | rel err loss / dX / dW vs naive |")
    print("|---|---|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "out")))

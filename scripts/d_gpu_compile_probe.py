"""Where the D reference's first calls go on a GPU: one fresh process, one fwd+bwd per loss configuration (2048 rows,
hd 4096, vocab 128256, bf16), each printed with its wall time and the dynamo/Inductor phases it added. Shows which
changes of a loss's attributes recompile the fused path, and how long each compilation takes.

    python3 scripts/d_gpu_compile_probe.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch._dynamo.utils as du

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader.puzzle_d.losses import cross_entropy, grpo  # noqa: E402
from solutions.memory_efficient_linear import memory_efficient_linear  # noqa: E402


def main() -> None:
    """Run the loss configurations in order and print where each call's time went."""
    dev = torch.device("cuda")
    R, H, V = 2048, 4096, 128256
    X = torch.randn(R, H, device=dev, dtype=torch.bfloat16, requires_grad=True)
    lin = torch.nn.Linear(H, V, bias=False, device=dev, dtype=torch.bfloat16)
    tok = torch.randint(0, V, (R,), device=dev)
    b = torch.stack([tok.float(), torch.randn(R, device=dev), torch.full((R,), -5.0, device=dev),
                     torch.full((R,), -5.0, device=dev), torch.ones(R, device=dev)], -1)
    cases = [("CE z-loss 1e-4 softcap 30", cross_entropy(tok, z_loss=1e-4, softcap=30.0), tok),
             ("CE z-loss 2e-4 softcap 30", cross_entropy(tok, z_loss=2e-4, softcap=30.0), tok),
             ("CE z-loss 3e-4 softcap 30", cross_entropy(tok, z_loss=3e-4, softcap=30.0), tok),
             ("GRPO normaliser 1000.0", grpo(b, normaliser=1000.0), b),
             ("GRPO normaliser 999.0", grpo(b, normaliser=999.0), b),
             ("GRPO normaliser 998.0", grpo(b, normaliser=998.0), b)]
    prev: dict[str, float] = {}
    for name, fn, lab in cases:
        torch.cuda.synchronize()
        t = time.perf_counter()
        memory_efficient_linear(X, lin, lab, fn).backward()
        torch.cuda.synchronize()
        now = {k: sum(v) for k, v in du.compilation_time_metrics.items()}
        top = sorted(((now[k] - prev.get(k, 0.0), k) for k in now), reverse=True)[:8]
        prev = now
        print(f"{name}: {time.perf_counter() - t:.1f} s; " + ", ".join(f"{k} {d:.1f}" for d, k in top if d > 0.3), flush=True)


if __name__ == "__main__":
    main()

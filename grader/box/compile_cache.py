"""A warm start for inductor's CPU compiles in every box: made once by trusted code, copied into each box.

A box's inductor cache starts empty (the runner's private directory, `grader.box.client`), and its first
`torch.compile` on a CPU pays inductor's one-off setup before any kernel of the submission's: on this 2-core CPU
(2026-12-07) a small function compiled in 19.5 s with an empty cache and in 5.7 s with a cache that another
function's compile had filled. The judge (outside every box) compiles a fixed function once per cache root, torch
version and machine into `$XDG_CACHE_HOME/unsloth-puzzle-grader/inductor-cpu/KEY` (`python -m
grader.box.compile_cache DIR`); each CPU runner copies it into its own empty cache before importing the submission
(`seed`); only boxed runners use it, as C's oracle store. No submission ever writes it (the box mounts everything read-only but its private /tmp and exchange
directory), no box's cache reaches another's, and inductor checks its own keys on every lookup: a stale or
foreign entry is a miss, never a wrong kernel. No CPU criterion measures compile time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DONE = "complete"  # written last: a directory without it is not used
WARMUP_TIMEOUT_S = 600.0


def root() -> Path:
    """`$XDG_CACHE_HOME/unsloth-puzzle-grader/inductor-cpu` (`~/.cache` by default)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "unsloth-puzzle-grader" / "inductor-cpu"


def _key() -> str:
    import torch

    facts = [torch.__version__, platform.python_version(), platform.machine(), platform.processor(), sys.executable]
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


def warm_directory() -> Path | None:
    """The warm cache for this machine and torch, made now if missing (under a lock, by a trusted subprocess);
    None where it cannot be made (the boxes then start cold, as before)."""
    target = root() / _key()
    if (target / DONE).exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f"{target.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (target / DONE).exists():
                return target
            work = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work)}
            done = subprocess.run([sys.executable, "-m", __name__, str(work)], env=env, capture_output=True,
                                  timeout=WARMUP_TIMEOUT_S, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                return None
            (work / DONE).write_text("")
            shutil.rmtree(target, ignore_errors=True)
            os.rename(work, target)
            return target
    except (OSError, subprocess.SubprocessError):
        return None


def seed(source: Path, cache: Path) -> None:
    """In the runner, before anything compiles: copy the warm cache into the box's own, empty, inductor cache."""
    if (source / DONE).exists() and not cache.exists():
        shutil.copytree(source, cache, ignore=shutil.ignore_patterns(DONE))


def _warm_up() -> None:
    """Compile a small function on the CPU, forward and backward: inductor's setup lands in its cache directory."""
    import torch

    def step(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(x @ w)
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).sum()

    x = torch.randn(4, 8)
    w = torch.randn(8, 8, requires_grad=True)
    torch.compile(step)(x, w).backward()


if __name__ == "__main__":
    if len(sys.argv) != 2 or os.environ.get("TORCHINDUCTOR_CACHE_DIR") != sys.argv[1]:
        sys.exit("usage: TORCHINDUCTOR_CACHE_DIR=DIR python -m grader.box.compile_cache DIR")
    _warm_up()

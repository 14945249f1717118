"""GPU timing: CUDA events around each call, L2 flushed before it, candidates and baselines interleaved.

One back-to-back measurement is not a ratio anyone should trust (the same bitsandbytes call was seen at
30 µs in one process and 77 µs in another), so every function is timed in every round, in rotating
order, over rotating inputs, and the spread is reported with the median.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

L2_FLUSH_BYTES = 256 * 1024 * 1024  # larger than any current L2 (H100: 50 MB, H200: 60 MB)
# GPU cycles to spin before each timed call, so the host has enqueued the call before the GPU reaches it
# and host-side jitter never shows up as device time (about 0.2 ms at H100 clocks).
HEADROOM_CYCLES = 400_000


@dataclass
class Timing:
    """Per-call times of one function, in microseconds."""

    name: str
    samples_us: list[float]

    @property
    def median_us(self) -> float:
        """Median per-call time."""
        return statistics.median(self.samples_us)

    @property
    def spread(self) -> float:
        """(p80 - p20) / median: the relative spread of the samples."""
        q = statistics.quantiles(self.samples_us, n=10)
        return (q[7] - q[1]) / self.median_us

    def summary(self) -> str:
        """'12.3 µs ± 4%' style text."""
        return f"{self.median_us:.1f} µs ±{100 * self.spread / 2:.0f}%"


def synchronized_perf_counter() -> float:
    """A host clock read after the device is idle: a timer for pytest-benchmark that counts device work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def time_interleaved(calls: dict[str, Callable[[int], Any]], *, n_inputs: int, rounds: int = 30,
                     per_round: int = 5, warmup: int = 3,
                     observe: Callable[[str, int, Any], None] | None = None) -> dict[str, Timing]:
    """Time each `calls[name](i)` (i cycles over n_inputs input sets) with CUDA events and a flushed L2.

    Each round runs every function `per_round` times, the order of functions rotating between rounds.
    Before each call the L2 is flushed and the GPU spins briefly, so only the call's device time is
    measured even when the host is slow to enqueue it. `observe(name, i, output)` sees every timed call's
    output after its end event is recorded (outside the timed region).
    """
    flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
    names = list(calls)
    for name in names:
        for i in range(warmup):
            calls[name](i % n_inputs)
    torch.cuda.synchronize()
    events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = {n: [] for n in names}
    k = 0
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            for _ in range(per_round):
                flush.zero_()
                torch.cuda._sleep(HEADROOM_CYCLES)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = calls[name](k % n_inputs)
                end.record()
                events[name].append((start, end))
                if observe is not None:
                    observe(name, k % n_inputs, out)
                k += 1
    torch.cuda.synchronize()
    return {n: Timing(n, [1000.0 * s.elapsed_time(e) for s, e in events[n]]) for n in names}


def copy_bandwidth(nbytes: int = 1 << 30, repeats: int = 20) -> float:
    """Measured device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return 2 * nbytes / statistics.median(times)

"""How long the judge waits for one call into the submission's box before calling it stalled.

A call's deadline follows what a reference computation of the same call takes on the same device (measured by
the judge in the run: bitsandbytes' dequantization for A, the full-logit loss for D, the eager training for C),
`FACTOR` times over, and is never below the device's floor, which covers what a first call costs an honest
submission (a Triton compile, an autotuning sweep) and the box's round trip. A stalled call is then reported
within the floor (90 s on a CPU, 60 s on a GPU) in any test, early or late in the run, while a submission that
is merely slow (seconds per call) is never called stalled. The per-test `--timeout` stays as the outer bound.
"""

from __future__ import annotations

FLOOR_S = {"cpu": 90.0, "cuda": 60.0}
FACTOR = 20.0


def deadline(device: str, reference_s: float = 0.0, *, floor_s: float | None = None) -> float:
    """Seconds to wait for a call on `device` whose reference computation took `reference_s` (`floor_s` replaces
    the device's floor for tasks that compile or train)."""
    floor = FLOOR_S.get(device, FLOOR_S["cpu"]) if floor_s is None else floor_s
    return max(floor, FACTOR * reference_s)


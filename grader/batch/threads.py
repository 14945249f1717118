"""How many CPU threads each of several gradings on one host may use.

torch (OpenMP) starts one compute thread per core in every process. Gradings run side by side each doing so put
several threads on every core, and OpenMP's waiting threads spin: on a 2-core machine, six corpus gradings two at
a time took 114 s with every process on two threads and 80 s on one (BENCHMARKS.md, "The self-tests on two
cores"). Ray does the same for its tasks (`grader.batch.cluster`). A value the environment already holds is kept.
"""

from __future__ import annotations

import os

VARIABLE = "OMP_NUM_THREADS"


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def share(side_by_side: int) -> int:
    """Threads for each of `side_by_side` gradings that run at once on this host's cores (at least one)."""
    return max(1, cores() // max(1, side_by_side))


def environment(side_by_side: int, env: dict[str, str]) -> dict[str, str]:
    """`env` with OMP_NUM_THREADS set to this host's share for one of `side_by_side` gradings, unless it is set."""
    if VARIABLE in env:
        return env
    return {**env, VARIABLE: str(share(side_by_side))}

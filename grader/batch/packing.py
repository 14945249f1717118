"""How many gradings share a GPU: each puzzle's measured footprint against each GPU's memory.

A grading's footprint is what it held on the GPU at once, as its scorecard's `resources` records it: the judge's
own peak plus the submission's box's peak, plus one CUDA context for each of the two processes (the allocator's
figures do not count the contexts). Work done once per key (C's eager oracle, which the oracle store then serves
to every later grading) counts only for gradings that did it (`Footprints`).

A puzzle with no measured footprint yet runs alone on its GPU; once a grading of it has finished, the largest
footprint seen so far, with `MARGIN`, decides how many run side by side. `jobs` bounds the gradings running at
once on the host whatever the memory allows; a grading that does not fit waits for one to finish.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

T = TypeVar("T")

GIB = 2**30
CONTEXT_BYTES = GIB  # one CUDA context with torch's kernels loaded: about 0.5-0.6 GiB on an H100; counted as 1 GiB
MARGIN = 1.2  # a later submission may hold more than the ones measured so far (allocator rounding, other shapes)


@dataclass
class Footprints:
    """What each puzzle's finished gradings held on the GPU at once (bytes), learned as they finish.

    A grading that did a once-per-key piece of work itself (`one_off` in its resources: C's oracle, trained because
    the store did not have it) is measured apart from one that loaded it: the next grading of the puzzle is given
    the footprint of the kind the last one was, since gradings of one batch share one key (one seed, device and
    grader) and a store that served one serves the rest."""

    loading: dict[str, int] = field(default_factory=dict)  # judge + box + contexts, the largest seen
    computing: dict[str, int] = field(default_factory=dict)  # the same with the one-off work, the largest seen
    last_computed: dict[str, bool] = field(default_factory=dict)

    def learn(self, puzzle: str, resources: dict[str, Any] | None) -> None:
        """Take a finished grading's `resources` (its scorecard's) into account."""
        if not resources:
            return
        judge, box, one_off = (int(resources.get(k) or 0) for k in ("judge", "box", "one_off"))
        table = self.computing if one_off else self.loading
        table[puzzle] = max(table.get(puzzle, 0), max(judge, one_off) + box + 2 * CONTEXT_BYTES)
        self.last_computed[puzzle] = bool(one_off)

    def need(self, puzzle: str) -> int | None:
        """The memory a grading of `puzzle` is given (footprint with MARGIN), or None while none was measured."""
        table = self.computing if self.last_computed.get(puzzle) else self.loading
        return int(table[puzzle] * MARGIN) if puzzle in table else None


def gpu_memory(gpus: list[str]) -> dict[str, int]:
    """Each GPU's free memory in bytes when the batch starts (`nvidia-smi`), by id: what other processes already
    hold on a card is not the batch's to use; {} where it cannot be read."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    total = {}
    for line in out.splitlines():
        index, _, mib = line.partition(",")
        if index.strip() in gpus and mib.strip().isdigit():
            total[index.strip()] = int(mib) * 2**20
    return total


@dataclass(eq=False)
class Placement:
    """Where a grading runs, what was set aside for it, and the most gradings that ran on that GPU at once while it
    ran (itself included)."""

    puzzle: str
    gpu: str
    reserved: int | None  # bytes set aside for it (None: the whole GPU, its puzzle's footprint not yet known)
    side_by_side: int = 1


class GpuPacker:
    """Hands out GPUs to gradings by memory: `place` blocks until one has room, `release` gives it back."""

    def __init__(self, gpus: list[str], *, jobs: int, capacity: dict[str, int] | None = None,
                 footprints: Footprints | None = None) -> None:
        if not gpus:
            raise ValueError("GpuPacker needs at least one GPU")
        self.gpus, self.jobs = list(gpus), jobs
        self.capacity = capacity if capacity is not None else gpu_memory(self.gpus)
        self.footprints = footprints or Footprints()
        self.running: dict[str, list[Placement]] = {g: [] for g in self.gpus}
        self._cond = threading.Condition()

    def _reserve(self, gpu: str, puzzle: str) -> int | None | bool:
        """The bytes to set aside for a grading of `puzzle` on `gpu` (None: all of it), or False when it must wait."""
        here = self.running[gpu]
        need = self.footprints.need(puzzle)
        if need is None or gpu not in self.capacity:  # unmeasured (or a GPU of unknown size): alone on the GPU
            return None if not here else False
        if any(p.reserved is None for p in here):
            return False
        return need if sum(p.reserved for p in here) + need <= self.capacity[gpu] else False

    def place(self, puzzle: str, *, alone: bool = False) -> Placement:
        """Wait for a GPU with room for a grading of `puzzle` (and a free job slot), and reserve it there; with
        `alone`, the whole of an idle GPU."""
        with self._cond:
            while True:
                if sum(map(len, self.running.values())) < self.jobs:
                    for gpu in sorted(self.gpus, key=lambda g: len(self.running[g])):
                        reserved = (None if not self.running[gpu] else False) if alone else self._reserve(gpu, puzzle)
                        if reserved is not False:
                            placement = Placement(puzzle, gpu, reserved)
                            here = self.running[gpu]
                            here.append(placement)
                            for p in here:
                                p.side_by_side = max(p.side_by_side, len(here))
                            return placement
                self._cond.wait()

    def release(self, placement: Placement, resources: dict[str, Any] | None) -> None:
        """The grading ended: learn its footprint from its `resources` and free what was set aside for it."""
        with self._cond:
            self.footprints.learn(placement.puzzle, resources)
            self.running[placement.gpu].remove(placement)
            self._cond.notify_all()


def starved(card: dict[str, Any] | None, puzzle: str) -> bool:
    """Whether a scorecard's puzzle was left incomplete by memory that was not the submission's (the judge's own
    out-of-memory error, or a box starved by another process)."""
    p = (card or {}).get("puzzles", {}).get(puzzle)
    return bool(p) and not p.get("complete", True) and any(
        c.get("grader_failure") and "out of memory" in c.get("detail", "") for c in p["criteria"].values())


def run_packed(packer: GpuPacker, puzzle: str, grade: Callable[[str], T],
               card_of: Callable[[T], dict[str, Any] | None]) -> tuple[T, Placement]:
    """`grade(gpu)` where `packer` places a grading of `puzzle`; when its scorecard says memory ran out for a reason
    not the submission's (`starved`: a footprint learned too small, or another process on the GPU), once more alone
    on an idle GPU. Returns the last result and its placement."""
    for alone in (False, True):
        placement = packer.place(puzzle, alone=alone)
        card = None
        try:
            result = grade(placement.gpu)
            card = card_of(result)
        finally:
            packer.release(placement, (card or {}).get("resources"))
        if alone or not starved(card, puzzle):
            return result, placement
    raise AssertionError("unreachable")

"""What each picture of the HTML report draws, read from a scorecard's JSON alone
(`grader.scoring.scorecard.scorecard_json`).

Each puzzle card's criteria carry `data`: the figures their tests recorded (`criterion_data` in
grader/plugins/fixtures.py). `figures(letter, puzzle)` turns them into one `Figure` per picture; a picture whose data
the card does not hold is a `Figure` with `data=None` and the reason, so the page says what is missing instead of
drawing empty axes. Nothing here draws (`grader.report.svg_plots` does) or trusts the card's values to be well
formed: a value of the wrong type counts as not recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SPEED_SERIES = ("candidate", "fast_dequantize", "bnb")
QUANTITIES = ("loss", "gradient scale", "gradient error")
MAPS_SHOWN = 3  # wrong-element maps drawn per card, the largest inputs first


@dataclass(frozen=True)
class KernelTimes:
    """A's per-weight kernel-time medians (µs) per function, the byte floor and the share of copy bandwidth."""

    weights: list[str]
    times_us: dict[str, list[float | None]]  # SPEED_SERIES -> one median per weight
    floor_us: list[float | None]
    bandwidth_pct: list[float | None]
    passes: list[float]  # the speedup of each timing pass


@dataclass(frozen=True)
class WrongMap:
    """Where A's wrong elements lie: counts per (group of `blocks_per_row` absmax blocks, position in the block)."""

    input: str
    counts: list[list[int]]
    blocksize: int
    blocks: int
    blocks_per_row: int
    wrong: int
    judged: int


@dataclass(frozen=True)
class Peaks:
    """D's peak memory per loss (bytes), the submission's against the naive version's, and the puzzle's bar."""

    losses: list[str]
    candidate: list[float]
    naive: list[float]
    limit: float  # the largest allowed candidate / naive
    where: str


@dataclass(frozen=True)
class Errors:
    """D's largest share of the parity allowance used, per (criterion, loss); None where no usable result came."""

    labels: list[str]  # "criterion: loss"
    worst: list[float | None]  # None: a result missing, malformed or not finite
    over: list[int]  # problems beyond the allowance
    problems: list[int]


@dataclass(frozen=True)
class Compilations:
    """C's compilations per micro-batch, in the run's order, with each micro-batch's shape, and the reasons."""

    labels: list[str]  # "step s, b x length"
    lengths: list[int]
    counts: list[int]
    total: int
    limit: int
    recompiles: list[tuple[str, str]]  # (function, reason)


@dataclass(frozen=True)
class GraphBreaks:
    """C's graph breaks: (location, reason, source line)."""

    breaks: list[tuple[str, str, str]]


@dataclass(frozen=True)
class Performance:
    """C's steady step time (s) and peak memory (bytes), compiled against eager."""

    steady_step_s: tuple[float, float]  # (compiled, eager)
    peak_bytes: tuple[float, float] | None
    compile_overhead_s: float | None


@dataclass(frozen=True)
class Deviation:
    """One of C's compared quantities: the run's and the floor run's gaps along the steps, floor and tolerance."""

    quantity: str
    at: list[str]
    run: list[float | None]
    floor_run: list[float | None]  # aligned with `at`, None where the floor run has no gap there
    floor: float
    tolerance: float


@dataclass(frozen=True)
class Deviations:
    """C's compared quantities, each along the run."""

    quantities: list[Deviation]


@dataclass(frozen=True)
class Figure:
    """One picture: its title and the data it draws, or `data=None` and why it is not drawn."""

    key: str
    title: str
    data: Any
    missing: str = ""


def number(x: Any) -> float | None:
    """`x` as a finite float, or None (booleans, text, null and non-finite values are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _mapping(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _items(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _data(puzzle: dict[str, Any], criterion: str) -> dict[str, Any]:
    return _mapping(_mapping(puzzle.get("criteria", {}).get(criterion)).get("data"))


def _absent(puzzle: dict[str, Any], letter: str, criterion: str) -> str:
    """Why a criterion's data is not in the card, from its status."""
    c = puzzle.get("criteria", {}).get(criterion)
    if c is None:
        return f"not recorded: {letter}.{criterion} was not graded in this run"
    status = c.get("status")
    first = (c.get("detail") or "").strip().splitlines()[:1]
    if status in ("not_measured", "not_attempted"):
        why = f" ({first[0]})" if first else ""
        return f"not recorded: {letter}.{criterion} was {status.replace('_', ' ')}{why}"
    if status == "failed":
        return f"not recorded: {letter}.{criterion} failed before the figures were measured"
    return f"not recorded in this scorecard ({letter}.{criterion} {status}, without the figures)"


def kernel_times(puzzle: dict[str, Any]) -> Figure:
    """A: per-weight kernel times of the candidate against fast_dequantize and bitsandbytes."""
    title = "A: kernel time per weight (median, CUDA events)"
    data = _data(puzzle, "speedup")
    rows = [r for r in _items(data.get("per_weight")) if isinstance(r, dict) and isinstance(r.get("weight"), str)]
    if not rows:
        return Figure("A.kernel_times", title, None, _absent(puzzle, "A", "speedup"))
    passes = [p for p in (number(x) for x in _items(data.get("passes"))) if p is not None]
    return Figure("A.kernel_times", title, KernelTimes(
        [r["weight"] for r in rows], {s: [number(r.get(f"{s}_us")) for r in rows] for s in SPEED_SERIES},
        [number(r.get("floor_us")) for r in rows], [number(r.get("copy_bandwidth_pct")) for r in rows], passes))


def wrong_maps(puzzle: dict[str, Any]) -> list[Figure]:
    """A: where the wrong elements lie, for the largest failing inputs `correct` recorded."""
    title = "A: where the wrong elements lie"
    found = []
    for what, m in _mapping(_data(puzzle, "correct").get("wrong_elements")).items():
        counts = m.get("counts") if isinstance(m, dict) else None
        sizes = [number(m.get(k)) if isinstance(m, dict) else None
                 for k in ("blocksize", "blocks", "blocks_per_row", "wrong", "judged")]
        if (not isinstance(counts, list) or not counts or None in sizes
                or not all(isinstance(r, list) and len(r) == sizes[0] and all(number(v) is not None for v in r)
                           for r in counts)):
            continue
        blocksize, blocks, per_row, wrong, judged = (int(s) for s in sizes)
        found.append(WrongMap(str(what), [[int(v) for v in r] for r in counts], blocksize, blocks, per_row, wrong,
                              judged))
    if not found:
        status = puzzle.get("criteria", {}).get("correct", {}).get("status")
        if status == "passed":
            why = "no wrong element: A.correct passed"
        elif status == "failed":
            why = ("not recorded: A.correct failed without a map of wrong elements (on the contract, a crash, or in a "
                   "card written before the grader recorded maps: see its detail)")
        else:
            why = _absent(puzzle, "A", "correct")
        return [Figure("A.wrong_elements", title, None, why)]
    found.sort(key=lambda m: -m.blocks)
    return [Figure(f"A.wrong_elements.{i}", f"{title}: {m.input}", m) for i, m in enumerate(found[:MAPS_SHOWN])]


def peaks(puzzle: dict[str, Any]) -> Figure:
    """D: peak memory against the naive full-logit version, per loss, with the puzzle's 50% line."""
    title = "D: peak memory at the puzzle's size against the naive version"
    rows = []
    for criterion in ("VRAM_50_percent_reduction", "GRPO_memory_efficient_linear_works"):
        for loss, p in _mapping(_data(puzzle, criterion).get("peaks")).items():
            if isinstance(p, dict) and number(p.get("candidate_bytes")) is not None and (
                    number(p.get("naive_bytes")) or 0) > 0:
                rows.append((str(loss), p))
    if not rows:
        return Figure("D.peaks", title, None, _absent(puzzle, "D", "VRAM_50_percent_reduction"))
    limit = number(rows[0][1].get("limit")) or 0.5
    return Figure("D.peaks", title, Peaks([loss for loss, _ in rows], [float(p["candidate_bytes"]) for _, p in rows],
                                          [float(p["naive_bytes"]) for _, p in rows], limit,
                                          str(rows[0][1].get("where", ""))))


def errors(puzzle: dict[str, Any]) -> Figure:
    """D: per loss, the largest share of the parity allowance the submission's error used (1 = the allowance)."""
    title = "D: worst error against its allowance, per loss"
    labels, worst, over, problems = [], [], [], []
    for criterion in puzzle.get("criteria", {}):
        for loss, e in _mapping(_data(puzzle, criterion).get("errors")).items():
            if not isinstance(e, dict) or number(e.get("problems")) is None:
                continue
            labels.append(f"{criterion}: {loss}")
            worst.append(number(e.get("worst")))
            over.append(int(number(e.get("over")) or 0))
            problems.append(int(e["problems"]))
    if not labels:
        return Figure("D.errors", title, None, _absent(puzzle, "D", "correct"))
    return Figure("D.errors", title, Errors(labels, worst, over, problems))


def compilations(puzzle: dict[str, Any]) -> Figure:
    """C: compilations per micro-batch over the run, with each one's length, and the recompile reasons."""
    title = "C: compilations over the training run"
    data = _data(puzzle, "excessive_recompilation").get("compilations")
    micro = data.get("micro") if isinstance(data, dict) else None
    keys = ("step", "batch", "length", "compilations")
    if not isinstance(micro, list) or not micro or not all(
            isinstance(m, dict) and all(number(m.get(k)) is not None for k in keys) for m in micro):
        return Figure("C.compilations", title, None, _absent(puzzle, "C", "excessive_recompilation"))
    recompiles = [(str(r.get("function", "")), str(r.get("reason", ""))) for r in _items(data.get("recompiles"))
                  if isinstance(r, dict)]
    return Figure("C.compilations", title, Compilations(
        [f"step {int(m['step'])}, {int(m['batch'])}x{int(m['length'])}" for m in micro],
        [int(m["length"]) for m in micro], [int(m["compilations"]) for m in micro],
        int(number(data.get("total")) or sum(int(m["compilations"]) for m in micro)),
        int(number(data.get("limit")) or 30), recompiles))


def graph_breaks(puzzle: dict[str, Any]) -> Figure:
    """C: every graph break with its location, reason and source line (an empty list: none over the run)."""
    title = "C: graph breaks"
    found = _data(puzzle, "no_graph_breaks").get("graph_breaks")
    if not isinstance(found, list):
        return Figure("C.graph_breaks", title, None, _absent(puzzle, "C", "no_graph_breaks"))
    return Figure("C.graph_breaks", title, GraphBreaks(
        [(str(b.get("location", "")), str(b.get("reason", "")), str(b.get("source", ""))) for b in found
         if isinstance(b, dict)]))


def performance(puzzle: dict[str, Any]) -> Figure:
    """C: steady step time and peak memory, compiled against eager (measured on a GPU only)."""
    title = "C: steady step and peak memory, compiled against eager"
    data = _data(puzzle, "correct").get("performance")
    steps = data.get("steady_step_s") if isinstance(data, dict) else None
    step = (number(steps.get("compiled")), number(steps.get("eager"))) if isinstance(steps, dict) else (None, None)
    if None in step:
        passed = puzzle.get("criteria", {}).get("correct", {}).get("status") == "passed"
        why = ("not recorded in this scorecard (the grader measures them on a GPU only)" if passed else
               _absent(puzzle, "C", "correct"))
        return Figure("C.performance", title, None, why)
    mem = data.get("peak_bytes")
    peak = (number(mem.get("compiled")), number(mem.get("eager"))) if isinstance(mem, dict) else (None, None)
    return Figure("C.performance", title, Performance(step, None if None in peak else peak,
                                                      number(data.get("compile_overhead_s"))))


def deviations(puzzle: dict[str, Any]) -> Figure:
    """C: the loss and gradient deviations from the eager oracle along the run, against the noise floor."""
    title = "C: deviations from the eager oracle against the noise floor"
    data = _data(puzzle, "correct").get("deviations")
    found = []
    for q in QUANTITIES:
        d = data.get(q) if isinstance(data, dict) else None
        if not isinstance(d, dict) or number(d.get("floor")) is None or not (number(d.get("tolerance")) or 0) > 0:
            continue
        run = [g for g in _items(d.get("run")) if isinstance(g, dict)]
        floor_run = {str(g.get("at")): number(g.get("value")) for g in _items(d.get("floor_run")) if isinstance(g, dict)}
        at = [str(g.get("at")) for g in run]
        found.append(Deviation(q, at, [number(g.get("value")) for g in run], [floor_run.get(a) for a in at],
                               float(d["floor"]), float(d["tolerance"])))
    if not found or not any(d.at for d in found):
        return Figure("C.deviations", title, None, _absent(puzzle, "C", "correct"))
    return Figure("C.deviations", title, Deviations(found))


def figures(letter: str, puzzle: dict[str, Any]) -> list[Figure]:
    """Every picture of one puzzle's section, in page order."""
    if letter == "A":
        return [kernel_times(puzzle), *wrong_maps(puzzle)]
    if letter == "C":
        return [compilations(puzzle), graph_breaks(puzzle), deviations(puzzle), performance(puzzle)]
    if letter == "D":
        return [peaks(puzzle), errors(puzzle)]
    return []

"""Puzzle A's speed standard: what the measured kernel times earn, and when they are not to be believed.

The figures come from `grader/puzzle_a/test_speed.py` (the `A.timing` task in the box, `grader.measure.timing`):
per timing pass and per weight of the notebook (three MLPs of gate, up and down projections), the CUDA-event samples
of the candidate and of the baselines `fast_dequantize` and bitsandbytes' `bnb`, and a fingerprint
(`grader.judging.compare.fingerprint`) of every timed output; the first pass also brings its untimed outputs back
whole. Each judgement here is a `grader.judging.verdict.Verdict`:

- `judge_outputs`: **the timed calls are judged too.** Each untimed output of the first pass must meet puzzle A's
  correctness standard (`grader.puzzle_a.standard.judge`, on a random sample of its elements), and every timed
  output must have the fingerprint of the untimed output for the same input; the inputs are rewritten in place
  between passes (`rotate`), so a result cached by pointer goes stale. Outputs that change once timing begins fail
  (the speed test fails `correct` with them).
- `judge_floor`: a candidate faster than moving its bytes at the measured copy bandwidth (`SUSPECT_FRACTION_OF_FLOOR`
  of it) is not believable: suspect, not rewarded.
- `undecided`: a pass's speedup is the notebook's aggregation, the baseline's total time over the nine weights over
  the candidate's (`speedup`). Passes are taken until their mean, give or take two standard errors, lies on one step
  of the rubric's ladder (`settled`: then that step is the verdict, however far apart the passes are within it), or
  until `MAX_PASSES`; a speedup still straddling a step then is not measured.
- `judge_speedup`: the mean speedup's points on the rubric's ladder (`grader.scoring.rubric.value_points`: <= 1.00x:
  -3, >= 1.05x: +1, >= 1.10x: +2 more, >= 1.15x: +2 more); a speedup that earns no points fails. Also reported: the
  notebook's own protocol (`mlp_dequantize` x1000 with synchronisation), bitsandbytes' speed and the achieved share of
  copy bandwidth.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch

from grader.judging.compare import fingerprint
from grader.judging.verdict import Verdict
from grader.puzzle_a import standard
from grader.scoring.rubric import PUZZLE_A, value_points

# A call this much faster than moving its bytes at the measured copy bandwidth is not believable.
SUSPECT_FRACTION_OF_FLOOR = 0.9
# Passes at least and at most; two standard errors of the passes' mean must sit on one step of the ladder.
MIN_PASSES, MAX_PASSES = 2, 6
# Elements of each untimed output checked against the standard (all of a smaller weight).
SAMPLED_ELEMENTS = 1 << 20
SHOWN_PROBLEMS = 6  # of the outputs that changed, named in the verdict

# One pass, as the box returns it: per weight, {"samples_us": {function: [µs, ...]}, "fingerprints": [[int, ...] per
# copy], and, in the first pass, "outputs": [tensor per copy]}.
Pass = list[dict[str, Any]]
Slots = list[list[tuple[torch.Tensor, Any]]]  # per weight, its copies as (packed weight, quant_state)


@dataclass(frozen=True)
class Weight:
    """One timed weight of the notebook: its MLP case and projection, shape, output dtype, and the bytes one
    dequantization moves (packed codes, absmax, output)."""

    case: int
    projection: str
    shape: tuple[int, ...]
    dtype: str  # "bfloat16"
    bytes_moved: int

    @classmethod
    def of(cls, case: int, projection: str, quant_state: Any) -> Weight:
        """The weight whose quantization state is `quant_state`."""
        n = quant_state.shape.numel()
        moved = (n + 1) // 2 + quant_state.absmax.numel() + n * quant_state.dtype.itemsize
        return cls(case, projection, tuple(quant_state.shape), str(quant_state.dtype)[6:], moved)

    @property
    def label(self) -> str:
        """`gate_proj (2048, 8192) float16`, as the scorecard names it."""
        return f"{self.projection} {self.shape} {self.dtype}"

    @property
    def key(self) -> str:
        """`0-gate_proj-2048x8192-float16`, as pytest-benchmark entries name it."""
        return f"{self.case}-{self.projection}-{'x'.join(map(str, self.shape))}-{self.dtype}"


@dataclass(frozen=True)
class Protocol:
    """The notebook's own timing protocol on one of its cases: seconds for 1000 x (up, gate, down), synchronised."""

    label: str  # "hd=2048 m=8192"
    candidate_s: float
    baseline_s: float  # fast_dequantize


@dataclass(frozen=True)
class Untimed:
    """The first pass's untimed outputs, judged: what is wrong with them, and per weight and copy the fingerprint
    every timed output of that input must have (None where the untimed output is wrong)."""

    problems: list[str]
    fingerprints: list[list[int | None]]


def rotate(slots: Slots) -> None:
    """Rewrite the inputs in place between passes: copy i of each weight takes the contents of copy i + 1 (so pass r's
    copy i holds what the first pass's copy (i + r) mod n held)."""
    for copies in slots:
        tensors = [[w, qs.absmax, qs.offset, qs.state2.absmax] for w, qs in copies]
        first = [t.clone() for t in tensors[0]]
        for i in range(len(copies)):
            source = tensors[i + 1] if i + 1 < len(copies) else first
            for dst, src in zip(tensors[i], source):
                dst.copy_(src)


def judge_untimed(first: Pass, slots: Slots) -> Untimed:
    """The first pass's untimed outputs against puzzle A's standard, on a random sample of each one's elements (call it
    before the inputs are rotated)."""
    problems, expected = [], []
    gen = torch.Generator().manual_seed(0)
    for k, (slot, copies) in enumerate(zip(first, slots)):
        prints = []
        for i, (out, (w, qs)) in enumerate(zip(slot["outputs"], copies)):
            n = qs.shape.numel()
            at = None if n <= SAMPLED_ELEMENTS else torch.randint(0, n, (SAMPLED_ELEMENTS,), generator=gen)
            wrong = standard.judge(out, w, qs, what=f"untimed call after timing, weight {k} copy {i}", at=at).failures
            problems += wrong
            prints.append(int(fingerprint(out)) if out is not None and not wrong else None)
        expected.append(prints)
    return Untimed(problems, expected)


def judge_outputs(untimed: Untimed, passes: list[Pass]) -> Verdict:
    """Failed when an untimed output is wrong or a timed output is not its input's untimed output, through the
    rotations between passes; the first `SHOWN_PROBLEMS` problems are named."""
    problems = list(untimed.problems)
    for r, run in enumerate(passes):
        for k, slot in enumerate(run):
            n = len(slot["fingerprints"])
            for i, got in enumerate(slot["fingerprints"]):
                want = untimed.fingerprints[k][(i + r) % n]
                changed = sum(fp != want for fp in got)
                if want is not None and changed:
                    problems.append(f"pass {r + 1}, weight {k} copy {i}: {changed} of {len(got)} timed outputs differ "
                                    f"from the output of the same input outside the timing loop")
    if not problems:
        return Verdict()
    return Verdict(["the outputs changed once timing began (every timed output must be what the same input gives "
                    "outside the timing loop, and correct): " + "; ".join(problems[:SHOWN_PROBLEMS])])


def speedup(run: Pass) -> float:
    """One pass's speedup over fast_dequantize: the sum of the weights' median times, the baseline's over the
    candidate's."""
    totals = _summed(run)
    return totals["fast_dequantize"] / totals["candidate"]


def settled(ratios: list[float]) -> bool:
    """Whether the passes' mean, give or take two standard errors, lies on one step of the ladder."""
    if len(ratios) < MIN_PASSES:
        return False
    mean = statistics.fmean(ratios)
    half = 2 * statistics.stdev(ratios) / math.sqrt(len(ratios))
    return _ladder_step(mean - half) == _ladder_step(mean + half)


def undecided(ratios: list[float]) -> str | None:
    """Why these passes' speedups cannot be scored (they straddle a step of the ladder), or None when they can."""
    if settled(ratios):
        return None
    return (f"timing unstable on this machine: {len(ratios)} passes gave {', '.join(f'{r:.3f}x' for r in ratios)}, "
            f"straddling a step of the rubric's ladder; rerun on a quiet GPU")


def judge_floor(weights: list[Weight], passes: list[Pass], bandwidth: float) -> Verdict:
    """The first pass's candidate times against each weight's memory floor (its bytes at `bandwidth`, bytes/s): failed
    for a time below `SUSPECT_FRACTION_OF_FLOOR` of it; `used` is the largest such fraction over its allowance. The
    data are the report's kernel-time figure: per weight its medians, floor and share of copy bandwidth, every pass's
    speedup and the copy bandwidth."""
    suspect, rows, used = [], [], 0.0
    for weight, med in zip(weights, _medians(passes[0])):
        floor_us = _floor_us(weight, bandwidth)
        used = max(used, SUSPECT_FRACTION_OF_FLOOR * floor_us / med["candidate"])
        if med["candidate"] < SUSPECT_FRACTION_OF_FLOOR * floor_us:
            suspect.append(f"{weight.projection} {weight.shape}: {med['candidate']:.1f} µs < floor {floor_us:.1f} µs")
        rows.append({"weight": weight.label, "floor_us": floor_us,
                     "copy_bandwidth_pct": 100 * floor_us / med["candidate"], **{f"{k}_us": v for k, v in med.items()}})
    data = {"per_weight": rows, "passes": [speedup(p) for p in passes], "copy_bandwidth_gbs": bandwidth / 1e9}
    if not suspect:
        return Verdict(used=used, data=data)
    return Verdict(["timings faster than the memory floor (suspect, not rewarded): " + "; ".join(suspect)], used=used,
                   data=data)


def judge_speedup(weights: list[Weight], passes: list[Pass], bandwidth: float, protocol: list[Protocol]) -> Verdict:
    """The mean speedup of the passes on the rubric's ladder (once `undecided` is None: otherwise it is given no step
    and no failure): failed where it earns no points. The summary is the scorecard's detail, a line of figures and then
    one per weight and per notebook case; the data are the figures pytest-benchmark keeps with the run."""
    ratios = [speedup(p) for p in passes]
    ratio = statistics.fmean(ratios)
    totals = _summed(passes[0])
    bnb = totals["bnb"] / totals["candidate"]
    candidate_s, baseline_s = sum(p.candidate_s for p in protocol), sum(p.baseline_s for p in protocol)
    lines = [_weight_line(w, med, bandwidth) for w, med in zip(weights, _medians(passes[0]))]
    lines += [f"notebook protocol, {p.label}: candidate {p.candidate_s:.3f} s, fast_dequantize {p.baseline_s:.3f} s "
              f"({p.baseline_s / p.candidate_s:.2f}x)" for p in protocol]
    summary = (f"{ratio:.3f}x fast_dequantize in kernel time over the notebook's {len(weights)} weights, mean of "
               f"{len(ratios)} passes ({', '.join(f'{r:.3f}x' for r in ratios)}; {bnb:.2f}x bnb dequantize_4bit); "
               f"copy {bandwidth / 1e9:.0f} GB/s; notebook protocol (x1000, synchronised): {candidate_s:.3f} s vs "
               f"fast_dequantize {baseline_s:.3f} s ({baseline_s / candidate_s:.2f}x); every timed output checked")
    data = {"kernel_speedup": ratio, "kernel_speedup_passes": ratios, "copy_bandwidth_gbs": bandwidth / 1e9,
            "per_weight": lines, "fast_dequantize_protocol_s": baseline_s, "candidate_protocol_s": candidate_s,
            "bnb_kernel_speedup": bnb}
    failures = []
    if settled(ratios):
        points, ladder = value_points(PUZZLE_A, "speedup", ratio)
        summary += f"; {ratio:.3f}x {ladder}: {points:+d} points"
        failures = [] if points > 0 else [f"speedup {ratio:.3f}x earns no points: {summary}"]
    return Verdict(failures, "\n".join([summary, *lines]), data=data)


def kernel_samples(weights: list[Weight], run: Pass) -> list[tuple[str, Weight, list[float]]]:
    """Per weight and timed function (candidate, fast_dequantize, bnb), its samples in `run`, in seconds: one
    pytest-benchmark entry each, so `--benchmark-save` and `--benchmark-compare` track every weight's kernel time."""
    return [(name, weight, [us * 1e-6 for us in samples_us])
            for slot, weight in zip(run, weights) for name, samples_us in slot["samples_us"].items()]


def _ladder_step(ratio: float) -> int:
    return value_points(PUZZLE_A, "speedup", ratio)[0]


def _medians(run: Pass) -> list[dict[str, float]]:
    """Per weight, each timed function's median time (µs)."""
    return [{name: statistics.median(samples) for name, samples in slot["samples_us"].items()} for slot in run]


def _summed(run: Pass) -> dict[str, float]:
    """Per timed function, the sum over the weights of its median times (µs)."""
    meds = _medians(run)
    return {name: sum(med[name] for med in meds) for name in meds[0]}


def _floor_us(weight: Weight, bandwidth: float) -> float:
    return weight.bytes_moved / bandwidth * 1e6


def _weight_line(weight: Weight, med: dict[str, float], bandwidth: float) -> str:
    return (f"{weight.label}: candidate {med['candidate']:.1f} µs, fast_dequantize {med['fast_dequantize']:.1f} µs "
            f"({med['fast_dequantize'] / med['candidate']:.2f}x), bnb {med['bnb']:.1f} µs "
            f"({med['bnb'] / med['candidate']:.2f}x), {100 * _floor_us(weight, bandwidth) / med['candidate']:.0f}% of "
            f"copy bandwidth")

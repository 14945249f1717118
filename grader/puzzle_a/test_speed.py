"""Puzzle A, `speedup`: kernel time against Unsloth's `fast_dequantize` on the notebook's shapes (GPU).

Measured in the submission's box (`A.timing`) per weight with CUDA events, L2 flushed, inputs rotated, candidate and
baselines interleaved (grader.measure.timing), in passes until the speedup settles on a step of the rubric's ladder;
then the notebook's own protocol (`A.protocol`, through pytest-benchmark). Judged by puzzle A's speed standard
(`grader.puzzle_a.speed`, which says why): the timed outputs, the memory floor, the ladder. A submission whose
outputs change once timing begins fails `correct` too and earns nothing for speed.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from grader.box import watchdog
from grader.judging.box_calls import box_call
from grader.judging.outcomes import not_measured
from grader.measure.timing import copy_bandwidth, synchronized_perf_counter
from grader.plugins.benchmark_relay import record_samples
from grader.plugins.runtime import runs_side_by_side
from grader.puzzle_a import speed
from grader.puzzle_a.notebook import MLP, NOTEBOOK_CASES

ROTATING_INPUTS = 3  # MLP copies per shape, so no call finds its weight in L2 from the previous one
PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
TIMING_FLOOR_S = 600.0  # one pass: nine weights, three functions, 150 timed calls each, and first-call compiles


def _slots(mlps_by_case: list[list[MLP]]) -> speed.Slots:
    """Per weight of the notebook (case x projection), its copies as (weight, quant_state)."""
    return [[(getattr(mlp, proj).weight, getattr(mlp, proj).weight.quant_state) for mlp in mlps]
            for mlps in mlps_by_case for proj in PROJECTIONS]


@pytest.mark.criterion("A", "speedup")
@pytest.mark.benchmark(group="A-notebook-protocol", timer=synchronized_perf_counter)
def test_speedup_over_fast_dequantize(a_box, device, benchmark, criterion_detail, criterion_data, request, progress,
                                      also_decide):
    if runs_side_by_side(request.config):  # as pytest-benchmark itself does under xdist
        not_measured("tests run side by side under pytest-xdist (-n), so timings would share the device; "
                     "grade the speedup in a run without -n")
    if device.type != "cuda":
        not_measured("speed is measured on a GPU only")
    bandwidth = copy_bandwidth()
    mlps_by_case = []
    for bsz, qlen, hd, m, seed, dtype in NOTEBOOK_CASES:
        torch.manual_seed(seed)
        mlps_by_case.append([MLP(hd, m, dtype, device) for _ in range(ROTATING_INPUTS)])
    slots = _slots(mlps_by_case)
    weights = [speed.Weight.of(k // len(PROJECTIONS), proj, copies[0][1])
               for k, (copies, proj) in enumerate(zip(slots, PROJECTIONS * len(NOTEBOOK_CASES)))]
    deadline = watchdog.deadline(device.type, floor_s=TIMING_FLOOR_S)

    def timing_pass(outputs: bool) -> list[dict[str, Any]]:
        return box_call(a_box, "A.timing", slots, outputs=outputs, doing="timing the candidate", deadline=deadline)

    with progress.step("A: kernel times", f"candidate, bnb and fast_dequantize interleaved, 9 weights, "
                                          f"{speed.MIN_PASSES} to {speed.MAX_PASSES} passes"):
        runs = [timing_pass(outputs=True)]
        untimed = speed.judge_untimed(runs[0], slots)
        while len(runs) < speed.MAX_PASSES and not speed.settled([speed.speedup(r) for r in runs]):
            speed.rotate(slots)
            runs.append(timing_pass(outputs=False))
    outputs = speed.judge_outputs(untimed, runs)
    if not outputs.passed:
        also_decide("A.correct", "failed", outputs.message())
        pytest.fail(outputs.message(), pytrace=False)
    floor = speed.judge_floor(weights, runs, bandwidth)
    criterion_data(**floor.data)
    _record_kernel_times(request, runs[0], weights)

    with progress.step("A: the notebook's timing protocol", "1000 x 3 calls per shape, fast_dequantize then candidate"):
        cases = [[(w, w.quant_state) for w in (getattr(mlps[0], p).weight for p in ("up_proj", "gate_proj", "down_proj"))]
                 for mlps in mlps_by_case]
        baseline_s = box_call(a_box, "A.protocol", cases, "fast_dequantize", doing="timing fast_dequantize by the "
                              "notebook's protocol", deadline=deadline)
        candidate_s: list[float] = []
        benchmark.pedantic(lambda: candidate_s.extend(box_call(a_box, "A.protocol", cases, "candidate",
                                                               doing="timing the candidate by the notebook's protocol",
                                                               deadline=deadline)),
                           rounds=1, iterations=1, warmup_rounds=0)
    protocol = [speed.Protocol(f"hd={case[2]} m={case[3]}", c, b)
                for case, c, b in zip(NOTEBOOK_CASES, candidate_s, baseline_s)]

    verdict = speed.judge_speedup(weights, runs, bandwidth, protocol)
    benchmark.extra_info.update(verdict.data)
    assert floor.passed, floor.message()
    unsettled = speed.undecided([speed.speedup(r) for r in runs])
    if unsettled:
        not_measured(unsettled)
    criterion_detail(verdict.summary, value=verdict.data["kernel_speedup"])
    assert verdict.passed, verdict.message()


def _record_kernel_times(request: pytest.FixtureRequest, run: speed.Pass, weights: list[speed.Weight]) -> None:
    """The first pass's CUDA-event samples as pytest-benchmark entries (`speed.kernel_samples`)."""
    for name, weight, samples_s in speed.kernel_samples(weights, run):
        record_samples(request.config, name=f"{name} {weight.key}",
                       fullname=f"{request.node.nodeid}[{name}-{weight.key}]", group="A-kernel-times",
                       samples_s=samples_s, extra_info={"weight": weight.key, "timed": name}, clock="CUDA events")

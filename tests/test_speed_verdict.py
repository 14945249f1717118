"""Puzzle A's speed standard (`grader.puzzle_a.speed`) on figures made up here (the timing itself needs a GPU): the
rubric's ladder scores the passes' mean speedup once the passes agree on a step, however far apart they are, and
not otherwise; a time below the memory floor is suspect; every timed output must be the untimed output of its input,
through the in-place rotations between passes; a wrong untimed output is named."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import pytest
import torch

from grader.judging.compare import fingerprint
from grader.plugins.benchmark_relay import record_samples
from grader.puzzle_a import oracles, speed
from grader.puzzle_a.strategies import WeightCase

BANDWIDTH = 2e12  # bytes/s: every made-up weight's floor is 1 µs
WEIGHTS = [speed.Weight(k // 3, proj, (1024 * (k + 1), 512), "bfloat16", 2_000_000)
           for k, proj in enumerate(("gate_proj", "up_proj", "down_proj") * 3)]
PROTOCOL = [speed.Protocol("hd=2048 m=8192", 1.0, 1.2), speed.Protocol("hd=1024 m=4096", 0.5, 0.6)]


def _pass(ratio: float, candidate_us: float = 100.0) -> speed.Pass:
    """A timing pass in which every weight's fast_dequantize takes `ratio` times the candidate's median."""
    return [{"samples_us": {"candidate": [candidate_us * f for f in (0.98, 1.0, 1.05)],
                            "fast_dequantize": [ratio * candidate_us * f for f in (0.99, 1.0, 1.02)],
                            "bnb": [2 * candidate_us] * 3}} for _ in WEIGHTS]


def test_a_faster_candidate_passes_with_its_speedup_value_and_every_step_it_reached():
    passes = [_pass(1.20), _pass(1.22)]
    verdict = speed.judge_speedup(WEIGHTS, passes, BANDWIDTH, PROTOCOL)
    assert verdict.passed and speed.undecided([speed.speedup(p) for p in passes]) is None
    assert verdict.data["kernel_speedup"] == pytest.approx(1.21) and verdict.data["bnb_kernel_speedup"] == 2.0
    head, *lines = verdict.summary.splitlines()
    assert head.startswith("1.210x fast_dequantize in kernel time over the notebook's 9 weights, mean of 2 passes "
                           "(1.200x, 1.220x; 2.00x bnb dequantize_4bit); copy 2000 GB/s"), head
    assert head.endswith("1.210x reached >= 1.05, >= 1.1, >= 1.15 of the rubric's ladder (<= 1: -3, >= 1.05: +1, "
                         ">= 1.1: +2, >= 1.15: +2): +5 points"), head
    assert lines[0] == ("gate_proj (1024, 512) bfloat16: candidate 100.0 µs, fast_dequantize 120.0 µs (1.20x), "
                        "bnb 200.0 µs (2.00x), 1% of copy bandwidth")
    assert lines[-1] == "notebook protocol, hd=1024 m=4096: candidate 0.500 s, fast_dequantize 0.600 s (1.20x)"
    assert len(lines) == len(WEIGHTS) + len(PROTOCOL) and verdict.data["per_weight"] == lines


def test_a_slower_candidate_gets_fewer_points_and_one_no_faster_than_the_baseline_fails():
    assert speed.judge_speedup(WEIGHTS, [_pass(1.07), _pass(1.08)], BANDWIDTH, PROTOCOL).summary.splitlines()[0] \
        .endswith(": +1 points")
    slow = speed.judge_speedup(WEIGHTS, [_pass(0.80), _pass(0.83)], BANDWIDTH, PROTOCOL)
    assert not slow.passed and slow.message().startswith("speedup 0.815x earns no points: 0.815x fast_dequantize")
    assert slow.message().endswith("-3 points"), slow.message()  # the words A.toml asserts on a GPU
    level = speed.judge_speedup(WEIGHTS, [_pass(1.02), _pass(1.03)], BANDWIDTH, PROTOCOL)
    assert not level.passed and "earns no points" in level.message() and level.message().endswith("+0 points")


def test_the_ladder_decides_when_the_passes_agree_on_a_step():
    assert speed.settled([0.420, 0.481])  # 14% apart, both far below 1.00x: the -3 is certain
    assert speed.settled([1.71, 1.69, 1.70])
    assert not speed.settled([1.04, 1.06])  # straddles 1.05
    assert not speed.settled([0.99, 1.01])  # straddles 1.00
    assert not speed.settled([1.3])  # one pass is no measurement


def test_a_noisy_measurement_straddling_a_step_is_not_measured_and_given_no_step():
    passes = [_pass(1.04), _pass(1.06)]
    ratios = [speed.speedup(p) for p in passes]
    assert speed.undecided(ratios) == ("timing unstable on this machine: 2 passes gave 1.040x, 1.060x, straddling a "
                                       "step of the rubric's ladder; rerun on a quiet GPU")
    verdict = speed.judge_speedup(WEIGHTS, passes, BANDWIDTH, PROTOCOL)
    assert verdict.passed and "points" not in verdict.summary.splitlines()[0]  # the test stops it as not measured
    assert speed.undecided([speed.speedup(_pass(0.99))]).startswith("timing unstable on this machine: 1 passes")


def test_a_candidate_faster_than_moving_its_bytes_is_suspect():
    honest = speed.judge_floor(WEIGHTS, [_pass(1.2), _pass(1.3)], BANDWIDTH)
    assert honest.passed and honest.used == pytest.approx(0.9 / 100)
    assert honest.data["passes"] == [pytest.approx(1.2), pytest.approx(1.3)] and honest.data["copy_bandwidth_gbs"] == 2e3
    row = honest.data["per_weight"][0]
    assert row == {"weight": "gate_proj (1024, 512) bfloat16", "floor_us": pytest.approx(1.0),
                   "copy_bandwidth_pct": pytest.approx(1.0), "candidate_us": 100.0,
                   "fast_dequantize_us": pytest.approx(120.0), "bnb_us": 200.0}
    suspect = speed.judge_floor(WEIGHTS, [_pass(1.2, candidate_us=0.5)], BANDWIDTH)
    assert not suspect.passed and suspect.used == pytest.approx(1.8)
    assert suspect.message().startswith("timings faster than the memory floor (suspect, not rewarded): "
                                        "gate_proj (1024, 512): 0.5 µs < floor 1.0 µs; "), suspect.message()


def _slots(copies: int = 3) -> speed.Slots:
    qs = [oracles.quantize(WeightCase((64, 40), torch.bfloat16, 1.0, False, False, seed=s).make()) for s in range(copies)]
    return [[(q.weight, q.quant_state) for q in qs]]


def _untimed(slots: speed.Slots) -> speed.Pass:
    outs = [oracles.bnb_dequantize(oracles.Quantized(w, qs)) for w, qs in slots[0]]
    return [{"outputs": outs, "fingerprints": [[int(fingerprint(o))] * 5 for o in outs]}]


def test_timed_outputs_must_be_the_untimed_outputs_of_their_inputs_through_the_rotations():
    slots = _slots()
    first = _untimed(slots)
    untimed = speed.judge_untimed(first, slots)
    assert untimed.problems == [] and None not in untimed.fingerprints[0]
    assert speed.judge_outputs(untimed, [first]).passed
    speed.rotate(slots)  # copy i now holds copy i + 1's contents
    assert [w for w, _ in slots[0]][0].equal(_slots()[0][1][0]), "the rotation moved copy 1's weight into copy 0"
    prints = untimed.fingerprints[0]
    rotated = [{"fingerprints": [[prints[(i + 1) % 3]] * 5 for i in range(3)]}]
    assert speed.judge_outputs(untimed, [first, rotated]).passed
    stale = [{"fingerprints": [[prints[i]] * 4 + [prints[(i + 1) % 3]] for i in range(3)]}]  # cached by pointer
    verdict = speed.judge_outputs(untimed, [first, stale])
    assert len(verdict.failures) == 1, verdict.failures
    said = verdict.message()
    assert said.startswith("the outputs changed once timing began (every timed output must be what the same input "
                           "gives outside the timing loop, and correct): pass 2, weight 0 copy 0: 4 of 5 timed "
                           "outputs differ"), said
    assert said.count("timed outputs differ") == 3


def test_a_wrong_untimed_output_is_named_and_its_timed_outputs_are_not_compared():
    slots = _slots()
    first = _untimed(slots)
    first[0]["outputs"][1] = torch.zeros_like(first[0]["outputs"][1])
    untimed = speed.judge_untimed(first, slots)
    assert len(untimed.problems) == 1 and "weight 0 copy 1" in untimed.problems[0], untimed.problems
    assert untimed.fingerprints[0][1] is None
    said = speed.judge_outputs(untimed, [first]).message()
    assert "the outputs changed once timing began" in said and "weight 0 copy 1" in said
    assert "timed outputs differ" not in said


def test_each_weights_samples_become_a_benchmark_entry_of_their_own():
    """`--benchmark-save`/`-compare` track every weight's kernel time: one pytest-benchmark entry per (weight, timed
    function), its rounds the grader's CUDA-event samples in seconds."""
    run = [{"samples_us": {"candidate": [1.0 + k, 3.0 + k, 2.0 + k], "fast_dequantize": [9.0], "bnb": [5.0, 7.0]}}
           for k in range(len(WEIGHTS))]
    entries = speed.kernel_samples(WEIGHTS, run)
    assert len(entries) == 3 * len(WEIGHTS) == len({(name, w.key) for name, w, _ in entries})
    name, weight, samples_s = entries[0]
    assert (name, weight.key, samples_s) == ("candidate", "0-gate_proj-1024x512-bfloat16", [1e-6, 3e-6, 2e-6])
    session = SimpleNamespace(disabled=False, benchmarks=[])
    assert record_samples(SimpleNamespace(_benchmarksession=session), name=f"{name} {weight.key}", fullname="t::s",
                          group="A-kernel-times", samples_s=samples_s, extra_info={}, clock="CUDA events")
    assert session.benchmarks[0].stats.median == statistics.median([1e-6, 3e-6, 2e-6])
    assert session.benchmarks[0].stats.rounds == 3

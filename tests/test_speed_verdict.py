"""Puzzle A's speed verdict, on figures made up here (the timing itself needs a GPU): the rubric's ladder decides
whenever the passes agree on a step however far apart they are, not otherwise; every timed output must be the
untimed output of its input, through the in-place rotations between passes; a wrong untimed output is named."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import torch

from grader.judging.compare import fingerprint
from grader.puzzle_a import oracles
from grader.puzzle_a.notebook import NOTEBOOK_CASES
from grader.puzzle_a.strategies import WeightCase
from grader.puzzle_a.test_speed import (PROJECTIONS, _check_timed, _judge_untimed, _record_kernel_times, _rotate,
                                       _settled)


def test_the_ladder_decides_when_the_passes_agree_on_a_step():
    assert _settled([0.420, 0.481])  # 14% apart, both far below 1.00x: the -3 is certain
    assert _settled([1.71, 1.69, 1.70])
    assert not _settled([1.04, 1.06])  # straddles 1.05
    assert not _settled([0.99, 1.01])  # straddles 1.00
    assert not _settled([1.3])  # one pass is no measurement


def _slots(copies: int = 3) -> list[list[tuple[torch.Tensor, object]]]:
    qs = [oracles.quantize(WeightCase((64, 40), torch.bfloat16, 1.0, False, False, seed=s).make()) for s in range(copies)]
    return [[(q.weight, q.quant_state) for q in qs]]


def _untimed(slots) -> list[dict]:
    outs = [oracles.bnb_dequantize(oracles.Quantized(w, qs)) for w, qs in slots[0]]
    return [{"outputs": outs, "fingerprints": [[int(fingerprint(o))] * 5 for o in outs]}]


def test_timed_outputs_must_be_the_untimed_outputs_of_their_inputs_through_the_rotations():
    slots = _slots()
    first = _untimed(slots)
    problems, expected = _judge_untimed(first, slots)
    assert problems == [] and None not in expected[0]
    assert _check_timed(expected, [first]) == []
    _rotate(slots)  # copy i now holds copy i + 1's contents
    prints = expected[0]
    rotated = [{"fingerprints": [[prints[(i + 1) % 3]] * 5 for i in range(3)]}]
    assert _check_timed(expected, [first, rotated]) == []
    assert [w for w, _ in slots[0]][0].equal(_slots()[0][1][0]), "the rotation moved copy 1's weight into copy 0"
    stale = [{"fingerprints": [[prints[i]] * 4 + [prints[(i + 1) % 3]] for i in range(3)]}]  # cached by pointer
    problems = _check_timed(expected, [first, stale])
    assert len(problems) == 3 and "4 of 5 timed outputs differ" in problems[0], problems


def test_a_wrong_untimed_output_is_named_and_its_timed_outputs_are_not_compared():
    slots = _slots()
    first = _untimed(slots)
    first[0]["outputs"][1] = torch.zeros_like(first[0]["outputs"][1])
    problems, expected = _judge_untimed(first, slots)
    assert len(problems) == 1 and "weight 0 copy 1" in problems[0], problems
    assert expected[0][1] is None


def test_each_weights_samples_become_a_benchmark_entry_of_their_own():
    """`--benchmark-save`/`-compare` track every weight's kernel time: one pytest-benchmark entry per (weight, timed
    function), its rounds the grader's CUDA-event samples in seconds."""
    slots = [[(None, SimpleNamespace(shape=(64 * (k + 1), 32), dtype=torch.bfloat16))]
             for k in range(len(PROJECTIONS) * len(NOTEBOOK_CASES))]
    run = [{"samples_us": {"candidate": [1.0 + k, 3.0 + k, 2.0 + k], "fast_dequantize": [9.0], "bnb": [5.0, 7.0]}}
           for k in range(len(slots))]
    session = SimpleNamespace(disabled=False, benchmarks=[])
    request = SimpleNamespace(config=SimpleNamespace(_benchmarksession=session), node=SimpleNamespace(nodeid="t::s"))
    _record_kernel_times(request, run, slots)
    assert len(session.benchmarks) == 3 * len(slots) == len({b.fullname for b in session.benchmarks})
    first = session.benchmarks[0]
    assert first.group == "A-kernel-times" and first.name == f"candidate 0-{PROJECTIONS[0]}-64x32-bfloat16"
    assert first.stats.median == statistics.median([1e-6, 3e-6, 2e-6]) and first.stats.rounds == 3

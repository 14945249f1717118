"""The standards' one answer, `grader.judging.verdict.Verdict`: A's and D's standards (parity, memory, training) on a
correct and a wrong output return their failures as data (never raising), with the figures the tests record."""

from __future__ import annotations

import torch

from grader.judging.verdict import Verdict
from grader.measure.memory import MemoryPeak
from grader.puzzle_a import oracles as a_oracles
from grader.puzzle_a import standard as a_standard
from grader.puzzle_a.strategies import WeightCase
from grader.puzzle_d import standard as d_standard
from grader.puzzle_d.losses import CallLog, cross_entropy
from grader.puzzle_d.oracles import Result, full_logit
from grader.puzzle_d.strategies import Problem
from grader.puzzle_d.training import TrainingRun


def test_a_verdict_lists_its_failures_and_joins_them_one_a_line():
    assert Verdict().passed and Verdict().message() == ""
    verdict = Verdict(["first", "second"])
    assert not verdict.passed and verdict.message() == "first\nsecond"


def _quantized() -> a_oracles.Quantized:
    return a_oracles.quantize(WeightCase((48, 40), torch.bfloat16, 1.0, True, False, seed=5).make("cpu"))


def test_a_correct_dequantization_passes_puzzle_a_standard():
    q = _quantized()
    verdict = a_standard.judge(a_oracles.bnb_dequantize(q).reshape(q.quant_state.shape), q.weight, q.quant_state,
                               what="bitsandbytes")
    assert verdict == Verdict()


def test_a_corrupted_dequantization_fails_with_its_wrong_elements_as_data():
    q = _quantized()
    out = a_oracles.bnb_dequantize(q).reshape(q.quant_state.shape).clone()
    out.view(-1)[70] = 2 * out.view(-1)[70] + 1
    verdict = a_standard.judge(out, q.weight, q.quant_state, what="a test weight")
    assert len(verdict.failures) == 1
    assert verdict.failures[0].startswith("1 of 1920 elements are not what any correct float32 evaluation rounds to")
    assert "first at flat index 70 (block 1)" in verdict.failures[0]
    assert verdict.failures[0].endswith("; a test weight")
    assert verdict.data["wrong"] == 1 and verdict.data["numel"] == 1920 and verdict.data["blocksize"] == 64
    assert verdict.used is None


def test_a_wrong_dtype_fails_on_its_metadata_without_a_map():
    q = _quantized()
    out = a_oracles.bnb_dequantize(q).reshape(q.quant_state.shape).float()
    verdict = a_standard.judge(out, q.weight, q.quant_state, what="a test weight")
    assert verdict.failures == ["output: dtype torch.float32, expected torch.bfloat16; a test weight"]
    assert verdict.data == {}


def _d_problem(chunk_size: int) -> tuple[Result, list[Result], dict]:
    X, linear, labels = Problem((3, 5), 8, 11, torch.float32, True, 0.0, 1.0, seed=0).build(torch.device("cpu"))
    loss = cross_entropy(labels)
    truth = full_logit(X, linear, labels, loss, 2.0, dtype=torch.float64)
    plain = d_standard.natives(X, linear, labels, loss, 2.0, chunk_size)
    return truth, plain, {"X": X, "linear": linear, "labels": labels, "forward_function": loss, "upstream": 2.0}


def test_d_result_as_a_native_computes_it_passes_with_its_share_of_the_allowance():
    truth, plain, problem = _d_problem(4)
    got = Result(plain[-1].loss, plain[-1].grads, CallLog(rows=[4, 4, 4, 3]))
    verdict = d_standard.judge(got, truth, plain, **problem)
    assert verdict.passed and 0 <= verdict.used <= 1 / d_standard.NATIVE_FACTOR


def test_d_wrong_result_fails_naming_each_bad_tensor():
    truth, plain, problem = _d_problem(4)
    grads = dict(plain[0].grads, weight=plain[0].grads["weight"] * 1.5, bias=None)
    verdict = d_standard.judge(Result(plain[0].loss, grads, CallLog(rows=[15])), truth, plain, **problem)
    assert verdict.used > 1
    assert [f.split(":")[0] for f in verdict.failures] == ["d(upstream*loss)/dweight", "d(upstream*loss)/dbias"]
    assert "exceeds" in verdict.failures[0] and "against the float64 truth" in verdict.failures[0]
    assert verdict.failures[1] == "d(upstream*loss)/dbias: no gradient arrived (expected one of shape (11,))"


def test_d_memory_at_most_half_of_naive_passes_and_above_it_fails_with_the_peaks_as_data():
    naive = MemoryPeak(8 * 2**30, 0, "fake tensors")
    ok = d_standard.MemoryComparison(MemoryPeak(2 * 2**30, 2**20, "fake tensors"), naive, "bsz 4")
    verdict = ok.judge("cross-entropy", "on CPU")
    assert verdict.passed and verdict.used == 0.5
    assert verdict.summary == ("cross-entropy, on CPU at bsz 4: peak 2.00 GiB vs naive 8.00 GiB (0.25x) "
                               "[fake tensors]")
    assert verdict.data["candidate_bytes"] == 2 * 2**30 and verdict.data["limit"] == d_standard.HALF_OF_NAIVE
    heavy = d_standard.MemoryComparison(MemoryPeak(6 * 2**30, 0, "fake tensors"), naive, "bsz 4")
    assert heavy.judge("GRPO", "on CPU").failures == [
        "GRPO: peak 6.00 GiB is 0.75x the naive full-logit version's 8.00 GiB (on CPU); at most 0.5x is required"]


def test_d_training_differences_are_failures_without_the_criterion_name():
    stock = TrainingRun([2.0, 1.5], [torch.ones(3)], [torch.full((3,), 2.0)])
    initial = [torch.ones(3)]
    same = d_standard.compare_training(stock, stock, initial, ["w"], model="tiny", steps=2)
    assert same.passed and same.data == {"gradient_error": 0.0, "weight_error": 0.0}
    ours = TrainingRun([2.0, 1.5], [torch.ones(3) * 1.5], [torch.full((3,), 2.0)])
    verdict = d_standard.compare_training(ours, stock, initial, ["w"], model="tiny", steps=2)
    assert verdict.failures == ["first-step gradient of w differs from stock by 5.00e-01 of its norm (at most 0.0001) "
                                "(tiny)"]
    assert verdict.summary == ("worst relative difference: first-step gradient 5.0e-01, final weights 0.0e+00 of the "
                               "distance trained")

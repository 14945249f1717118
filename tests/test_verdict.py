"""The standards' one answer, `grader.verdict.Verdict`: A's standard on a correct and a wrong output returns its
failures as data (never raising), with the figures the tests record."""

from __future__ import annotations

import torch

from grader.puzzle_a import oracles as a_oracles
from grader.puzzle_a import standard as a_standard
from grader.puzzle_a.strategies import WeightCase
from grader.verdict import Verdict


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

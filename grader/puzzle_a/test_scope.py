"""Puzzle A, `beyond_scope` (reported, never scored): float32 output, other blocksizes, non-nested states, fp4.

A submission that refuses these (raises) is reported as not supporting them, which is no fault; one
that returns a wrong answer fails the report line, since a silent wrong answer is worse than a refusal.
Answers are judged by the puzzle's correctness standard (`grader.puzzle_a.standard`), which covers
these variants too; where bitsandbytes' own answer does not meet it, the variant is not judged.
"""

from __future__ import annotations

import pytest
import torch

from grader.judging.outcomes import not_measured
from grader.puzzle_a import oracles, standard
from grader.puzzle_a.harness import contract_problems, run_call
from grader.puzzle_a.strategies import WeightCase

# (blocksize, nested, quant_type, output dtype)
VARIANTS = [(64, True, "nf4", torch.float32)] + [(bs, True, "nf4", torch.bfloat16) for bs in (
    32, 128, 256, 512, 1024, 2048, 4096)] + [(64, False, "nf4", torch.bfloat16), (256, False, "nf4", torch.bfloat16),
                                            (64, True, "fp4", torch.bfloat16), (64, False, "fp4", torch.bfloat16)]


@pytest.mark.criterion("A", "beyond_scope")
@pytest.mark.parametrize("blocksize,nested,quant_type,dtype", VARIANTS, ids=[
    f"{q}-bs{b}-{'nested' if n else 'flat'}-{str(d).removeprefix('torch.')}" for b, n, q, d in VARIANTS])
def test_variant(a_box, device, blocksize, nested, quant_type, dtype, criterion_detail):
    w = WeightCase((100, 77), dtype, 1.0, True, False, seed=blocksize).make(device)
    name = f"{quant_type} blocksize {blocksize} {'nested' if nested else 'flat'} {str(dtype).removeprefix('torch.')}"
    try:
        q = oracles.quantize(w, blocksize=blocksize, nested=nested, quant_type=quant_type)
    except Exception as exc:  # bitsandbytes itself refuses this variant on this device
        not_measured(f"bitsandbytes cannot quantize {name} here: {exc}")
    if not standard.judge(oracles.bnb_dequantize(q), q.weight, q.quant_state, what="bitsandbytes").passed:
        not_measured(f"{name}: bitsandbytes' own answer is outside the standard's model of this variant")
    got = run_call(a_box, q, doing=name, refusal="unsupported by the submission")
    problems = contract_problems(q, got, a_box)
    assert not problems, f"wrong answer instead of refusing: {name}: " + "; ".join(problems)
    verdict = standard.judge(got["output"], q.weight, q.quant_state, what=name)
    assert verdict.passed, "wrong answer instead of refusing: " + verdict.message()
    criterion_detail(f"{name}: supported")

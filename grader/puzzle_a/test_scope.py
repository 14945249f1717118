"""Puzzle A, `beyond_scope` (reported, never scored): other blocksizes, non-nested states and fp4.

A submission that refuses these (raises) is reported as not supporting them, which is no fault; one
that returns a wrong answer fails the report line, since a silent wrong answer is worse than a refusal.
"""

from __future__ import annotations

import pytest
import torch

from grader.outcomes import not_measured
from grader.puzzle_a import oracles
from grader.puzzle_a.strategies import WeightCase

VARIANTS = [(bs, True, "nf4") for bs in (32, 128, 256, 512, 1024, 2048, 4096)] + [
    (64, False, "nf4"), (256, False, "nf4"), (64, True, "fp4"), (64, False, "fp4")]


@pytest.mark.criterion("A", "beyond_scope")
@pytest.mark.parametrize("blocksize,nested,quant_type", VARIANTS,
                         ids=[f"{q}-bs{b}-{'nested' if n else 'flat'}" for b, n, q in VARIANTS])
def test_variant(dequantize_nf4, device, blocksize, nested, quant_type, criterion_detail):
    w = WeightCase((100, 77), torch.bfloat16, 1.0, True, False, seed=blocksize).make(device)
    try:
        q = oracles.quantize(w, blocksize=blocksize, nested=nested, quant_type=quant_type)
    except Exception as exc:  # bitsandbytes itself refuses this variant on this device
        not_measured(f"bitsandbytes cannot quantize {quant_type} blocksize {blocksize} here: {exc}")
    try:
        out = dequantize_nf4(q.weight, q.quant_state)
    except Exception as exc:
        not_measured(f"unsupported by the submission ({type(exc).__name__}: {str(exc)[:120]})")
    reference = oracles.bnb_dequantize(q)
    assert out.shape == reference.shape and out.dtype == reference.dtype, (
        f"returned {tuple(out.shape)} {out.dtype}, expected {tuple(reference.shape)} {reference.dtype}")
    worst = int(oracles.ulp_distance(out, reference).max())
    assert worst <= 1, f"wrong answer (up to {worst} ulp from bitsandbytes) instead of refusing"
    criterion_detail(f"{quant_type} blocksize {blocksize} {'nested' if nested else 'flat'}: supported")

"""Puzzle A, `tested_in_f16_and_bf16`: the notebook's own test, reproduced, judged by the puzzle's standard.

The notebook builds an MLP of three bitsandbytes `Linear4bit` layers per (bsz, qlen, hd, m, seed, dtype),
checks `assert_correct_bnb`, runs an MLP forward through the candidate's dequantization and compares it
with the module's own forward, and each dequantized weight with Unsloth's `fast_dequantize`, all with
`torch.testing.assert_close` defaults. Those comparisons hold a kernel to one particular rounding: a
correct kernel that rounds one element of millions differently (an FMA) fails them. So the criterion is
earned when, in both dtypes, every weight meets the correctness standard (`grader.puzzle_a.standard`) and
the MLP forward runs in the right dtype; what the notebook's literal `assert_close` calls would say is
kept in the detail. On a GPU the notebook's sizes are used; on CPU the same cases at reduced sizes, with
bitsandbytes' `dequantize_4bit` standing in for `fast_dequantize` (CUDA only).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grader.judging.compare import ulp_distance
from grader.puzzle_a import oracles, standard
from grader.puzzle_a.harness import call_candidate
from grader.puzzle_a.notebook import CPU_CASES, MLP, NOTEBOOK_CASES, assert_correct_bnb, mlp_forward

def _literal_assert_close(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """What the notebook's `torch.testing.assert_close(actual, expected, check_stride=True)` says: '' when it passes."""
    try:
        torch.testing.assert_close(actual, expected, check_stride=True)
    except AssertionError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return next((line for line in lines if line.startswith("Mismatched elements")), lines[0] if lines else "fails")
    return ""


@pytest.mark.criterion("A", "tested_in_f16_and_bf16")
@pytest.mark.parametrize("case", range(3), ids=["fp16-2048x8192", "bf16-1024x4096", "bf16-4096x14336"])
def test_notebook_case(a_box, device, case, criterion_detail):
    bsz, qlen, hd, m, seed, dtype = (NOTEBOOK_CASES if device.type == "cuda" else CPU_CASES)[case]
    torch.manual_seed(seed)
    mlp = MLP(hd, m, dtype, device)
    x = torch.randn((bsz, qlen, hd), device=device, dtype=dtype)

    def fx(layer: nn.Module) -> torch.Tensor:
        return call_candidate(a_box, oracles.Quantized(layer.weight, layer.weight.quant_state))

    if device.type == "cuda":
        reference, reference_name = (lambda w: oracles.fast_dequantize(w, w.quant_state)), "fast_dequantize"
    else:
        reference, reference_name = (lambda w: oracles.bnb_dequantize(oracles.Quantized(w, w.quant_state))), \
            "bitsandbytes dequantize_4bit"
    literal: list[str] = []
    for _ in range(2):  # the notebook's two warm-up rounds
        out = mlp_forward(x, mlp, fx)
        assert out.dtype == dtype, f"MLP output dtype {out.dtype}, expected {dtype}"
        assert_correct_bnb(mlp, dtype)
        for name in ("up_proj", "gate_proj", "down_proj"):
            w = getattr(mlp, name).weight
            got = fx(getattr(mlp, name))
            verdict = standard.judge(got, w, w.quant_state, what=f"{name} of notebook case {case} ({dtype})")
            assert verdict.passed, verdict.message()
            expected = reference(w)
            differ = ulp_distance(got, expected)
            if differ.any():
                verdict = _literal_assert_close(got, expected) or "passes"
                literal.append(f"{name}: {int((differ > 0).sum())} of {got.numel()} elements differ from "
                               f"{reference_name} (by up to {int(differ.max())} ulp; assert_close: {verdict})")
        mlp_says = _literal_assert_close(out, mlp(x))
    said = "; ".join([f"MLP forward vs the module's: {mlp_says}" if mlp_says else "MLP forward: passes",
                      *dict.fromkeys(literal)])
    criterion_detail(f"notebook case bsz={bsz} qlen={qlen} hd={hd} m={m} {str(dtype).removeprefix('torch.')}: every "
                     f"weight meets the standard; the notebook's literal assert_close calls: {said}")

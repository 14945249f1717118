"""Puzzle A, the `correct` gate: the candidate equals bitsandbytes' dequantization (at most 1 ulp).

Oracles: bitsandbytes' `dequantize_4bit`, and the exact float32 formula rounded once. One ulp is
real, not slack: bitsandbytes' CPU bf16 path differs from its CUDA path by 1 ulp, and fusing the
absmax decode into one FMA changes the last bit of a few elements. Bit-exactness is reported.
"""

from __future__ import annotations

import torch
import pytest
from hypothesis import given, strategies as st

from grader.puzzle_a import oracles
from grader.puzzle_a.harness import call_candidate
from grader.puzzle_a.strategies import WeightCase, weight_cases

MAX_ULP = 1


def _oracle_mismatches(out: torch.Tensor, q: oracles.Quantized, reference: torch.Tensor, case: object) -> list[str]:
    """Why `out` is not within MAX_ULP of both oracles (empty when it is)."""
    from grader.compare import mismatch_report

    for name, ref in (("bitsandbytes dequantize_4bit", reference),
                      ("exact float32 oracle", oracles.exact_dequantize(q))):
        reasons = mismatch_report(out, ref, atol=float("inf"), rtol=0, what=f"output vs {name}")
        if reasons:
            return reasons
        ulps = oracles.ulp_distance(out, ref)
        bad = ulps > MAX_ULP
        if bad.any():
            i = int(bad.reshape(-1).nonzero()[0])
            return [f"{int(bad.sum())} of {out.numel()} elements are more than {MAX_ULP} ulp from the {name} "
                    f"(worst {int(ulps.max())} ulp); first at flat index {i}: got {out.reshape(-1)[i].item()!r}, "
                    f"expected {ref.reshape(-1)[i].item()!r}; block {i // q.quant_state.blocksize}, input {case}"]
    return []


def _graded_call(dequantize_nf4, q: oracles.Quantized, case: object, *, context: str = "") -> float:
    """Call the candidate, compare with both oracles and return the fraction bit-exact with bitsandbytes.

    It fails from one place whatever went wrong:
    unwritten or cached outputs hold whatever memory held, so one example can break the contract in one
    run and miss the oracles in the next; a single raise site keeps Hypothesis' replays consistent.
    """
    out, problems = None, []
    try:
        out = call_candidate(dequantize_nf4, q)
    except AssertionError as exc:
        problems = [str(exc)]
    if out is not None:
        reference = oracles.bnb_dequantize(q)
        problems = _oracle_mismatches(out, q, reference, case)
    if problems:
        raise AssertionError(context + "\n".join(problems))
    return (out == reference).float().mean().item() if out.numel() else 1.0


@pytest.mark.criterion("A", "correct")
def test_matches_bitsandbytes_within_one_ulp(dequantize_nf4, device, max_numel, interpreted, criterion_detail):
    """Random shapes (1 element up), dtypes, scales, outliers and zero blocks, quantized by bitsandbytes."""
    exact: list[float] = []

    @given(case=weight_cases(max_numel=max_numel))
    def check(case: WeightCase) -> None:
        q = oracles.quantize(case.make(device))
        exact.append(_graded_call(dequantize_nf4, q, case))

    check()
    note = " (Triton interpreter: a plain bf16 cast truncates there, so bf16 is held to 1 ulp)" if interpreted else ""
    criterion_detail(f"{len(exact)} weights within {MAX_ULP} ulp of both oracles; bit-exact with bitsandbytes: "
                     f"{min(exact):.4f} worst, {sum(exact) / len(exact):.4f} mean{note}")


@pytest.mark.criterion("A", "correct")
def test_rewritten_weight_gives_a_new_result(dequantize_nf4, device):
    """No caching by pointer: after the weight and its state are overwritten in place, the output follows."""

    @given(first=weight_cases(max_numel=1 << 16, dtypes=(torch.float16, torch.bfloat16)), seed=st.integers(0, 2**31 - 1))
    def check(first: WeightCase, seed: int) -> None:
        q = oracles.quantize(first.make(device))
        call_candidate(dequantize_nf4, q)
        second = WeightCase(first.shape, first.dtype, first.scale * 3, not first.outliers, False, seed)
        q2 = oracles.quantize(second.make(device))
        qs, qs2 = q.quant_state, q2.quant_state
        q.weight.copy_(q2.weight)
        qs.absmax.copy_(qs2.absmax)
        qs.offset.copy_(qs2.offset)
        qs.state2.absmax.copy_(qs2.state2.absmax)
        _graded_call(dequantize_nf4, q, second, context="after the weight and its state were rewritten in place: ")

    check()


@pytest.mark.criterion("A", "correct")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_linear4bit_weight(dequantize_nf4, device, dtype):
    """The exact object the notebook passes: a `Linear4bit` weight quantized by moving it to the device."""
    from bitsandbytes.nn import Linear4bit

    layer = Linear4bit(192, 320, bias=False, compute_dtype=dtype, compress_statistics=True, quant_type="nf4")
    layer = layer.to(device)
    layer.weight.quant_state.dtype = dtype
    q = oracles.Quantized(layer.weight.data, layer.weight.quant_state)
    _graded_call(dequantize_nf4, q, "Linear4bit(192, 320)")

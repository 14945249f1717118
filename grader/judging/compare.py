"""Tensor comparison, the one module for it: whether a result is the tensor asked for, mismatch reports that explain
themselves (metadata first, then NaN/Inf, then the worst elements), distances in units in the last place, relative
norms, and the scale/error split of a gradient against its oracle. The puzzles' correctness standards
(`grader/puzzle_*/standard.py`) are built from these; what is particular to a puzzle (A's rounding bound, C's noise
floor, D's precision rule) stays in its standard.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

_INT = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}


def tensor_problems(actual: Any, *, shape: Sequence[int], dtype: torch.dtype, device: torch.device | None = None,
                    what: str, source: str = "", device_source: str = "") -> list[str]:
    """Whether `actual` is the tensor asked for: a plain torch.Tensor (a Parameter allowed) of `shape` and `dtype`,
    on `device` (its type only when it names no index; not checked when None). Empty when it is; `source` names
    where the expected shape and dtype come from ("quant_state."), `device_source` where the device does ("the
    weight's device"). The one such check every puzzle uses."""
    if not isinstance(actual, torch.Tensor):
        return [f"{what}: expected a torch.Tensor, got {type(actual).__name__}"]
    if type(actual) is not torch.Tensor and not isinstance(actual, torch.nn.Parameter):
        return [f"{what}: expected a plain torch.Tensor, got the subclass {type(actual).__name__}"]
    problems = []
    if tuple(actual.shape) != tuple(shape):
        problems.append(f"{what}: shape {tuple(actual.shape)}, expected {source and source + 'shape '}{tuple(shape)}")
    if actual.dtype != dtype:
        problems.append(f"{what}: dtype {actual.dtype}, expected {source and source + 'dtype '}{dtype}")
    if device is not None:
        same = actual.device == device if device.index is not None else actual.device.type == device.type
        if not same:
            problems.append(f"{what}: device {actual.device}, expected {device_source and device_source + ' '}{device}")
    return problems


def mismatch_report(actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float,
                    what: str, show: int = 5) -> list[str]:
    """Reasons why `actual` differs from `expected` beyond `atol + rtol*|expected|`; empty when it does not."""
    reasons = tensor_problems(actual, shape=expected.shape, dtype=expected.dtype,
                              device=torch.device(expected.device.type), what=what)
    if reasons:
        return reasons
    a = actual.detach().double().reshape(-1).cpu()
    e = expected.detach().double().reshape(-1).cpu()
    if a.numel() == 0:
        return []
    a_bad, e_bad = ~torch.isfinite(a), ~torch.isfinite(e)
    nonfinite = a_bad != e_bad
    if nonfinite.any():
        idx = nonfinite.nonzero().flatten()[:show].tolist()
        return [f"{what}: {int(nonfinite.sum())} elements are NaN/Inf where the reference is not (or the reverse); "
                f"first at flat indices {idx}: got {[a[i].item() for i in idx]}, expected {[e[i].item() for i in idx]}"]
    both_bad = a_bad & e_bad
    same_special = (a[both_bad] == e[both_bad]) | (a[both_bad].isnan() & e[both_bad].isnan())
    if not bool(same_special.all()):
        return [f"{what}: NaN/Inf values disagree with the reference"]
    fin = ~a_bad
    err = (a[fin] - e[fin]).abs()
    bad = err > atol + rtol * e[fin].abs()
    if bad.any():
        flat = fin.nonzero().flatten()
        idx = flat[bad.nonzero().flatten()[:show]].tolist()
        worst = int(err.argmax())
        reasons.append(
            f"{what}: {int(bad.sum())} of {a.numel()} elements differ beyond atol={atol:g}, rtol={rtol:g} "
            f"(max abs error {err.max().item():.3g} at flat index {int(flat[worst])}); first at {idx}: "
            f"got {[a[i].item() for i in idx]}, expected {[e[i].item() for i in idx]}")
    if fin.any() and e[fin].abs().max().item() > 0 and a[fin].abs().max().item() == 0:
        reasons.append(f"{what}: the output is all zeros but the reference is not (all {a.numel()} elements)")
    return reasons


def nonfinite_report(actual: torch.Tensor, truth: torch.Tensor, *, what: str, show: int = 3) -> str | None:
    """Where `actual` is NaN/Inf and the (float64) `truth` is finite, said in one line; None when nowhere."""
    a, t = actual.detach().double().reshape(-1).cpu(), truth.detach().double().reshape(-1).cpu()
    bad = ~torch.isfinite(a) & torch.isfinite(t)
    if not bad.any():
        return None
    i = bad.nonzero().flatten()[:show].tolist()
    return (f"{what}: {int(bad.sum())} NaN/Inf where the float64 truth is finite, first at flat indices {i}: "
            f"got {[a[j].item() for j in i]}, truth {[t[j].item() for j in i]}")


def ordered(x: torch.Tensor) -> torch.Tensor:
    """Float bit patterns mapped to integers that sort as the floats do (adjacent floats differ by 1)."""
    bits = x.dtype.itemsize * 8
    i = x.contiguous().view(_INT[x.dtype]).long()
    return torch.where(i < 0, -(1 << (bits - 1)) - i, i)


def from_ordered(i: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The inverse of `ordered`."""
    bits = dtype.itemsize * 8
    raw = torch.where(i < 0, -(1 << (bits - 1)) - i, i)
    return raw.to(_INT[dtype]).view(dtype)


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise distance in units in the last place between two tensors of one float dtype."""
    assert a.dtype == b.dtype and a.dtype in _INT
    return (ordered(a) - ordered(b)).abs()


def relative_norm(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    """||a - b|| / ||scale|| in float64 (0 when both norms are 0, inf when only the scale's is)."""
    num, den = (a.double() - b.double()).norm().item(), scale.double().norm().item()
    return num / den if den else (0.0 if num == 0 else math.inf)


def scale_and_error(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """`got` against `want` as `<got - want, want> / <want, want>` (a wrong scale: 0.1 for 1.1x) and
    `||got - want|| / ||want||` (all the difference), in float64."""
    g, o = got.double().flatten(), want.double().flatten()
    d, oo = g - o, float(o @ o)
    return float(d @ o) / oo, math.sqrt(float(d @ d) / oo)


def fingerprint(t: torch.Tensor) -> torch.Tensor:
    """A 0-d int64 tensor on `t`'s device, equal for tensors of equal bits (and, but for a 2**-64 chance, unequal
    otherwise): the bit patterns weighted by a fixed sequence and summed modulo 2**64. Exact on any device and in any
    summation order, and computed without a host sync, so the runner can take one of every timed output."""
    bits = t.detach().contiguous().view(torch.uint8 if t.element_size() == 1 else _BITS[t.element_size()])
    n = bits.numel()
    weights = torch.arange(n, dtype=torch.int64, device=t.device).mul_(2654435761).add_(40503).remainder_(2**31 - 1)
    return (bits.reshape(-1).to(torch.int64) * weights).sum()


_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}

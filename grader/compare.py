"""Tensor comparison that explains itself: metadata first, then NaN/Inf, then the worst elements."""

from __future__ import annotations

import torch


def mismatch_report(actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float,
                    what: str, show: int = 5) -> list[str]:
    """Reasons why `actual` differs from `expected` beyond `atol + rtol*|expected|`; empty when it does not."""
    if not isinstance(actual, torch.Tensor):
        return [f"{what}: expected a torch.Tensor, got {type(actual).__name__}"]
    if type(actual) is not torch.Tensor and not isinstance(actual, torch.nn.Parameter):
        return [f"{what}: expected a plain torch.Tensor, got the subclass {type(actual).__name__}"]
    reasons = []
    if actual.shape != expected.shape:
        reasons.append(f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if actual.dtype != expected.dtype:
        reasons.append(f"{what}: dtype {actual.dtype}, expected {expected.dtype}")
    if actual.device.type != expected.device.type:
        reasons.append(f"{what}: device {actual.device}, expected {expected.device}")
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
        reasons.append(f"{what}: the output is all zeros but the reference is not")
    return reasons


def assert_close(actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float, what: str) -> None:
    """Raise AssertionError with `mismatch_report`'s reasons when the tensors differ."""
    reasons = mismatch_report(actual, expected, atol=atol, rtol=rtol, what=what)
    assert not reasons, "\n".join(reasons)

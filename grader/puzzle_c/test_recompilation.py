"""How often the run compiled: in total (the notebook's max 30) and per new sequence length."""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import pytest

from grader.puzzle_c.run import CRun

MAX_COMPILATIONS = 30  # the notebook: "max 30, over 60 is definitely wrong"
RECOMPILES_RECORDED = 50  # recompile reasons kept as data for the HTML report
# Lengths allowed to compile: the first (static) and the second (dynamo's automatic dynamic shapes).
FREE_LENGTHS = 2


def _recompile_lines(c_run: CRun, limit: int = 8) -> str:
    recompiles = c_run.dynamo.recompiles if c_run.dynamo else []
    lines = [f"  {r.function}: {r.reason.splitlines()[0]}" for r in recompiles[:limit]]
    if len(recompiles) > limit:
        lines.append(f"  ... and {len(recompiles) - limit} more")
    return "\n".join(lines)


@pytest.mark.criterion("C", "excessive_recompilation")
def test_compilations_within_the_notebook_limit(c_run: CRun, criterion_detail: Callable[..., None],
                                                criterion_data: Callable[..., None]) -> None:
    """At most 30 graphs compiled over the run, and no frame reaches dynamo's recompile limit."""
    report = c_run.dynamo
    n = report.compilations if report else 0
    criterion_data(compilations={
        "total": n, "limit": MAX_COMPILATIONS, "micro": [asdict(m) for m in c_run.compiled.micro],
        "recompiles": [{"function": r.function, "reason": r.reason.splitlines()[0]}
                       for r in (report.recompiles if report else [])[:RECOMPILES_RECORDED]]})
    restarts = report.restarts if report else []
    restarted = (f"; dynamo restarted {len(restarts)} analysis(es), not counted (first: {restarts[0]})"
                 if restarts else "")
    criterion_detail(f"{n} compilations ({len(report.recompiles) if report else 0} recompiles) over "
                     f"{len(c_run.schedule.lengths)} micro-batches, {len(set(c_run.schedule.lengths))} lengths; "
                     f"notebook: max {MAX_COMPILATIONS}, over 60 is definitely wrong{restarted}", n)
    reasons = _recompile_lines(c_run)
    hits = report.recompile_limit_hits if report else []
    detail = "\n".join([*(h.splitlines()[0] + " " + " ".join(h.splitlines()[1:3]) for h in hits),
                        *(["recompiles:", reasons] if reasons else [])])
    c_run.fail_if_crashed("excessive_recompilation", detail)
    assert not hits, f"a frame hit dynamo's recompile limit:\n{detail}"
    assert n <= MAX_COMPILATIONS, f"{n} compilations, more than {MAX_COMPILATIONS}:\n{reasons}"


@pytest.mark.criterion("C", "dynamic_sequence_length_works")
def test_new_lengths_reuse_the_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """After the first two distinct lengths, no micro-batch with a new length compiles anything."""
    seen: list[int] = []
    offending = []
    for m in c_run.compiled.micro:
        if m.length in seen:
            continue
        seen.append(m.length)
        if len(seen) > FREE_LENGTHS and m.compilations:
            offending.append(f"length {m.length} (step {m.step}): {m.compilations} compilation(s)")
    judged = max(0, len(seen) - FREE_LENGTHS)
    criterion_detail(f"{len(offending)} of {judged} new lengths after the first {FREE_LENGTHS} compiled", len(offending))
    detail = "\n".join(offending)
    reasons = _recompile_lines(c_run)
    if offending and reasons:
        detail += "\nrecompiles:\n" + reasons
    c_run.fail_if_crashed("dynamic_sequence_length_works",
                          f"new lengths that compiled before the crash:\n{detail}" if offending else "")
    assert judged > 0, "the run saw too few lengths to judge"
    assert not offending, f"new sequence lengths recompiled:\n{detail}"

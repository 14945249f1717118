"""C's gates: the compiled copy computes what the eager one does, and nothing in the run breaks the graph."""

from __future__ import annotations

from typing import Callable

import pytest

from grader.puzzle_c import standard
from grader.puzzle_c.run import CRun


def _gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**30:.2f} GiB"


@pytest.mark.criterion("C", "correct")
def test_losses_and_lora_gradients_match_eager(c_run: CRun, criterion_detail: Callable[..., None],
                                               criterion_data: Callable[..., None]) -> None:
    """At every step, losses and LoRA gradients at the oracle's weights match it (`grader.puzzle_c.standard`)."""
    eager, compiled = c_run.eager, c_run.compiled
    criterion_detail(c_run.setting())
    c_run.fail_if_crashed("correct")
    missing = sorted(set(eager.step_grads[0]) ^ set(c_run.compiled_names or ()))
    assert not missing, (f"C.correct: trainable parameters differ between the eager model and what compile_qlora "
                         f"returned: {missing[:6]}")
    assert len(compiled.losses) == len(eager.losses), "C.correct: the compiled run did not complete every step"
    verdict = standard.judge(compiled, eager, c_run.eager_floor)
    criterion_detail(verdict.summary, verdict.used)
    criterion_data(deviations=verdict.data)
    assert verdict.passed, verdict.message()
    if c_run.device.type == "cuda":
        s_e, s_c = eager.steady_step_seconds(), compiled.steady_step_seconds()
        criterion_detail(
            f"reported, not scored: steady step {s_c * 1e3:.0f} ms compiled vs {s_e * 1e3:.0f} ms eager "
            f"({s_e / s_c:.2f}x); peak memory {_gib(compiled.peak_bytes)} vs {_gib(eager.peak_bytes)} "
            f"({compiled.peak_bytes / eager.peak_bytes:.2f}x); compile overhead "
            f"{compiled.compile_overhead_seconds():.0f} s")
        criterion_data(performance={"steady_step_s": {"compiled": s_c, "eager": s_e},
                                    "peak_bytes": {"compiled": compiled.peak_bytes, "eager": eager.peak_bytes},
                                    "compile_overhead_s": compiled.compile_overhead_seconds()})


@pytest.mark.criterion("C", "no_graph_breaks")
def test_no_graph_breaks_over_the_run(c_run: CRun, criterion_detail: Callable[..., None],
                                      criterion_data: Callable[..., None]) -> None:
    """Zero graph breaks counted by dynamo over the whole compiled training run."""
    breaks = c_run.dynamo.graph_breaks if c_run.dynamo else []
    criterion_data(graph_breaks=[{"location": b.location, "reason": b.reason, "source": b.source} for b in breaks])
    listing = "\n".join(f"  {b}" for b in breaks)
    criterion_detail(f"{len(breaks)} graph break(s) over {len(c_run.compiled.losses)} training steps", len(breaks))
    c_run.fail_if_crashed("no_graph_breaks", f"graph breaks before the crash:\n{listing}" if breaks else "")
    assert not breaks, f"{len(breaks)} graph break(s):\n{listing}"

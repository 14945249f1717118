"""`grader.measure.dynamo.record` on a small compiled program: what it reports of compilations, graph breaks and
where, recompiles and why, the graphs' ops, and inductor's matmul lowerings."""

from __future__ import annotations

import torch

from grader.measure.dynamo import record


def _breaks(x: torch.Tensor) -> torch.Tensor:
    y = torch.sin(x) * 2
    torch._dynamo.graph_break()
    return torch.cos(y) + 1


def _matmul(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) @ x.T


def test_record_reports_breaks_recompiles_graphs_and_matmul_lowerings():
    with record(disable_inductor_caches=True) as report:
        broken = torch.compile(_breaks, backend="eager", dynamic=False)
        lowered = torch.compile(_matmul, backend="inductor", dynamic=False)
        for n in (3, 4):
            broken(torch.randn(n))
            lowered(torch.randn(n, n))
    assert report.compilations == len(report.graphs) == 6  # 2 graphs of _breaks, 1 of _matmul, per shape
    [graph_break] = report.graph_breaks
    assert graph_break.location.endswith(f"test_dynamo_record.py:{_breaks.__code__.co_firstlineno + 2}")
    assert graph_break.source == "torch._dynamo.graph_break()"
    assert {"_breaks", "_matmul"} <= {r.function.split(" ")[0] for r in report.recompiles}  # and _breaks' resume
    assert all("size mismatch" in r.reason for r in report.recompiles)
    assert any("torch._VariableFunctionsClass.relu" in g.ops for g in report.graphs)
    assert [name for name, _ in report.matmul_tunings] == ["mm", "mm"]
    assert report.recompile_limit_hits == []


def test_a_restarted_analysis_is_noted_not_counted_as_a_compilation():
    """Under `dynamic=True` dynamo first traces a float argument as a symbol; `x ** s` cannot keep it, so the
    backend call raises TensorifyScalarRestartAnalysis and dynamo traces the frame again with the float
    specialised (then once per new value). Three graphs are compiled for three values, and the abandoned backend
    call is a restart, not a fourth compilation."""
    with record(disable_inductor_caches=True) as report:
        power = torch.compile(lambda x, s: x ** s, dynamic=True)
        for s in (1.5, 2.5, 3.5):
            power(torch.rand(4), s)
    assert report.compilations == len(report.graphs) == 3
    [restart] = report.restarts
    assert restart.endswith("TensorifyScalarRestartAnalysis") and "test_dynamo_record.py" in restart

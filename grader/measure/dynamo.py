"""What torch._dynamo did over a stretch of code: compilations, recompiles and why, graph breaks and where,
frames that hit the recompile limit, and which ops and modules the captured graphs contain.

Counts come from `torch._dynamo.utils.counters` (`stats.unique_graphs`, `frames.ok`, `graph_break`) and
recompile reasons from `torch._dynamo.utils.guard_failures`; locations of graph breaks from dynamo's
`graph_breaks` log artifact. Graph contents are read from every FX graph that dynamo hands to a backend
(a wrapper around `OutputGraph.call_user_compiler`), so whatever backend the code under test chose
still compiles the graph. Inductor's matmul lowerings are watched the same way (which ops were offered
Triton templates, i.e. ran with max-autotune); that needs inductor's caches off, or a cached graph is
never lowered. Works on torch 2.11 and 2.13.
"""

from __future__ import annotations

import linecache
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

_GRAPH_BREAK_LOGGERS = ("torch._dynamo.symbolic_convert.__graph_breaks", "torch._dynamo.convert_frame.__graph_breaks")
_BREAK_AT = re.compile(r"in user code at (?P<loc>\S+:\d+)\s*\nGraph Break Reason: [^\n]*\n\s*\n?(?P<why>[^\n]+)")


@dataclass(frozen=True)
class GraphBreak:
    """One graph break: dynamo's reason (first line), where in user code it happened, and that line of code (read
    where the code ran: in the box, for a submission)."""

    reason: str
    location: str
    source: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass(frozen=True)
class Recompile:
    """A recompilation of `function` (name, file:line) and the guard that failed."""

    function: str
    reason: str

    def __str__(self) -> str:
        return f"{self.function}: {self.reason}"


@dataclass(frozen=True)
class GraphContent:
    """One captured FX graph (nested subgraphs included): the ops it calls and the modules they came from."""

    frame: str  # the compiled frame's function, "name (file:line)"
    ops: frozenset[str]
    module_classes: frozenset[str]
    op_modules: frozenset[tuple[str, str]]  # (op, class name of each enclosing module)

    def ops_in_module(self, class_fragment: str) -> frozenset[str]:
        """Ops traced inside a module whose class name contains `class_fragment`."""
        return frozenset(op for op, cls in self.op_modules if class_fragment in cls)


@dataclass
class DynamoReport:
    """Everything dynamo did inside one `record()` block."""

    compilations: int = 0  # graphs compiled: backend calls that returned (an analysis restarted is not one)
    graph_breaks: list[GraphBreak] = field(default_factory=list)
    recompiles: list[Recompile] = field(default_factory=list)
    graphs: list[GraphContent] = field(default_factory=list)
    recompile_limit_hits: list[str] = field(default_factory=list)  # dynamo's warnings, one per frame
    matmul_tunings: list[tuple[str, bool]] = field(default_factory=list)  # (inductor op, Triton template offered)
    restarts: list[str] = field(default_factory=list)  # "frame: why" per backend call dynamo abandoned and redid

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> DynamoReport:
        """A report from the plain data a box's reply carries (`grader.box.wire.plain` of a DynamoReport)."""
        graphs = [GraphContent(g["frame"], frozenset(g["ops"]), frozenset(g["module_classes"]),
                               frozenset(tuple(p) for p in g["op_modules"])) for g in data["graphs"]]
        return cls(int(data["compilations"]), [GraphBreak(**b) for b in data["graph_breaks"]],
                   [Recompile(**r) for r in data["recompiles"]], graphs, [str(h) for h in data["recompile_limit_hits"]],
                   [(str(n), bool(t)) for n, t in data["matmul_tunings"]], [str(r) for r in data["restarts"]])


def _op_name(node: Any) -> str:
    target = node.target
    if node.op == "call_method":
        return f"Tensor.{target}"
    if node.op == "call_module":
        return f"module:{target}"
    name = getattr(target, "name", None)
    if callable(name):  # OpOverload / OpOverloadPacket / HigherOrderOperator
        return str(name())
    if isinstance(name, str) and type(target).__name__.endswith("HigherOrderOperator"):
        return name
    module = getattr(target, "__module__", None) or ""
    qual = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}.{qual}" if module else str(qual)


def _class_name(cls: Any) -> str:
    return cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"


def _frame(code: Any) -> str:
    return f"{code.co_name} ({code.co_filename}:{code.co_firstlineno})" if code is not None else "unknown frame"


def summarize_graph(gm: Any, frame: str = "unknown frame", frame_module: Any = None) -> GraphContent:
    """The ops and enclosing module classes of a dynamo FX graph and every graph nested in it.

    `frame_module` is the module whose method was compiled (a compiled `forward` called directly is not in
    its graph's `nn_module_stack`); it counts as enclosing every op.
    """
    import torch.fx

    ops: set[str] = set()
    classes: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for sub in gm.modules():
        if not isinstance(sub, torch.fx.GraphModule):
            continue
        for node in sub.graph.nodes:
            if node.op not in ("call_function", "call_method", "call_module"):
                continue
            op = _op_name(node)
            ops.add(op)
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            if isinstance(frame_module, torch.nn.Module):
                stack.append(("self", type(frame_module)))
            for _path, cls in stack:
                name = _class_name(cls)
                classes.add(name)
                pairs.add((op, name))
    return GraphContent(frame, frozenset(ops), frozenset(classes), frozenset(pairs))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _graph_breaks(counted: dict[str, int], logged: list[str]) -> list[GraphBreak]:
    """Located breaks from the log, each once; reasons the log did not locate come from the counters."""
    found: dict[tuple[str, str], GraphBreak] = {}
    for msg in logged:
        m = _BREAK_AT.search(msg)
        if m:
            path, _, line = m["loc"].rpartition(":")
            gb = GraphBreak(m["why"].strip(), m["loc"], linecache.getline(path, int(line)).strip())
            found.setdefault((gb.location, gb.reason), gb)
    located = {gb.reason for gb in found.values()}
    for reason in counted:
        first = reason.strip().splitlines()[0]
        if not any(first.startswith(r) or r.startswith(first) for r in located):
            found[("?", first)] = GraphBreak(first, "location not logged")
    return list(found.values())


@contextmanager
def record(*, fail_on_recompile_limit: bool = True, disable_inductor_caches: bool = False,
           ignore: tuple[str, ...] = ()) -> Iterator[DynamoReport]:
    """Count what dynamo compiles inside the block; the report is filled in when the block exits.

    Frames whose file path starts with one of `ignore` (a library's own internal compiles) are left out
    of the graphs, compilations and recompiles.
    Clears dynamo's counters and guard-failure log first (so earlier compiles, bitsandbytes' own
    included, do not count). With `fail_on_recompile_limit`, a frame that reaches the recompile limit
    raises instead of silently running eager for the rest of the block.
    """
    import torch._dynamo
    import torch._inductor.config
    from torch._dynamo import utils

    report = DynamoReport()
    utils.counters.clear()
    utils.guard_failures.clear()
    breaks, limit_hits = _Collect(), _Collect()
    try:
        with _logs_collected(breaks, limit_hits), _graphs_captured(report, ignore), _matmul_tunings_watched(report), \
                torch._dynamo.config.patch(fail_on_recompile_limit_hit=fail_on_recompile_limit), \
                torch._inductor.config.patch(force_disable_caches=disable_inductor_caches):
            yield report
    finally:
        _fill_in(report, breaks.messages, limit_hits.messages, ignore)


@contextmanager
def _graphs_captured(report: DynamoReport, ignore: tuple[str, ...]) -> Iterator[None]:
    """Every FX graph a backend compiled, from a frame not under `ignore`, summarised into `report` and counted as a
    compilation. A backend call that raises one of dynamo's restart signals (a Python scalar to turn into a tensor,
    say: dynamo then traces the frame again and compiles that) is noted in `report.restarts` instead."""
    from torch._dynamo import exc, output_graph

    original = output_graph.OutputGraph.call_user_compiler

    def capturing(self: Any, gm: Any, example_inputs: list[Any]) -> Any:
        tx = getattr(self, "root_tx", None)
        code = getattr(tx, "f_code", None)
        counted = code is None or not code.co_filename.startswith(ignore)
        graph = summarize_graph(gm, _frame(code), (getattr(tx, "f_locals", None) or {}).get("self")) if counted else None
        try:
            compiled = original(self, gm, example_inputs)
        except exc.RestartAnalysis as restart:
            if counted:
                report.restarts.append(f"{_frame(code)}: {type(restart).__name__}")
            raise
        if graph is not None:
            report.graphs.append(graph)
            report.compilations += 1
        return compiled

    output_graph.OutputGraph.call_user_compiler = capturing
    try:
        yield
    finally:
        output_graph.OutputGraph.call_user_compiler = original


@contextmanager
def _matmul_tunings_watched(report: DynamoReport) -> Iterator[None]:
    """Each op inductor's algorithm selection is asked to lower, and whether a Triton template was among its
    choices, appended to `report.matmul_tunings`."""
    from torch._inductor import ir, select_algorithm

    selector = select_algorithm.AlgorithmSelectorCache.__call__

    def watching(self: Any, name: str, choices: list[Any], *args: Any, **kwargs: Any) -> Any:
        report.matmul_tunings.append((name, any(isinstance(c, ir.TritonTemplateCallerBase) for c in choices)))
        return selector(self, name, choices, *args, **kwargs)

    select_algorithm.AlgorithmSelectorCache.__call__ = watching
    try:
        yield
    finally:
        select_algorithm.AlgorithmSelectorCache.__call__ = selector


@contextmanager
def _logs_collected(breaks: _Collect, limit_hits: _Collect) -> Iterator[None]:
    """Dynamo's graph-break log artifacts into `breaks` (and nowhere else while the block runs), its frame
    conversion messages (where recompile-limit warnings go) into `limit_hits` as well."""
    saved = []
    for name in _GRAPH_BREAK_LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.level, log.handlers[:]))
        log.handlers = [breaks]
        log.setLevel(logging.DEBUG)
    frame_log = logging.getLogger("torch._dynamo.convert_frame")
    frame_log.addHandler(limit_hits)
    try:
        yield
    finally:
        frame_log.removeHandler(limit_hits)
        for log, level, handlers in saved:
            log.handlers = handlers
            log.setLevel(level)


def _fill_in(report: DynamoReport, break_messages: list[str], limit_messages: list[str],
             ignore: tuple[str, ...]) -> None:
    """`report`'s graph breaks, recompiles and recompile-limit hits, from dynamo's counters and guard-failure log and
    the messages collected, leaving out frames under `ignore`."""
    from torch._dynamo import utils

    report.graph_breaks = _graph_breaks(dict(utils.counters["graph_break"]), break_messages)
    # A cache miss logs one reason per cache entry it tried; keep each distinct guard failure once.
    distinct = {Recompile(_frame(code), re.sub(r"^\S+: ", "", reason.strip())): None
                for code, reasons in utils.guard_failures.items() if not code.co_filename.startswith(ignore)
                for reason in reasons}
    report.recompiles = list(distinct)
    report.recompile_limit_hits = [m for m in limit_messages if "recompile_limit" in m
                                   and not any(path in m for path in ignore)]


def ops_traced(fn: Any, *args: Any) -> frozenset[str]:
    """The ops dynamo puts in the graph(s) of `fn(*args)` (compiled with a recording eager backend).

    Call it outside `record()`: it compiles, and resets dynamo afterwards.
    """
    import torch
    import torch._dynamo

    ops: set[str] = set()

    def backend(gm: Any, example_inputs: list[Any]) -> Any:
        ops.update(summarize_graph(gm).ops)
        return gm.forward

    torch._dynamo.reset()
    try:
        torch.compile(fn, backend=backend)(*args)
    finally:
        torch._dynamo.reset()
    return frozenset(ops)

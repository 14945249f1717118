"""What the compiled graphs contain, read from every FX graph dynamo handed to a backend during the run
(ops, and the classes of the modules they were traced in): not from what the submission says it did."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from grader.judging.outcomes import not_measured
from grader.measure.dynamo import GraphContent
from grader.puzzle_c.run import CRun

ATTENTION_OPS = ("scaled_dot_product_attention", "flex_attention", "softmax")
LOSS_OPS = ("cross_entropy", "nll_loss", "log_softmax")
DEQUANT_OPS = ("dequantize",)  # bitsandbytes::dequantize_4bit / _blockwise, a submission's dequantize_nf4


def _graphs(c_run: CRun, criterion: str) -> list[GraphContent]:
    """The run's graphs, as `criterion`'s test reads them; a crashed run fails it (`CRun.fail_if_crashed`)."""
    c_run.fail_if_crashed(criterion)
    return c_run.dynamo.graphs


def _summary(c_run: CRun) -> str:
    graphs = c_run.dynamo.graphs if c_run.dynamo else []
    classes = sorted({c.rsplit(".", 1)[-1] for g in graphs for c in g.module_classes})
    return f"{len(graphs)} graph(s) captured; modules traced: {', '.join(classes) or 'none'}"


def _assert_found(c_run: CRun, criterion_detail: Callable[..., None], what: str, hits: list[str]) -> None:
    # Name the most telling ops first: the kernels, not the views and casts around them.
    shown = sorted(set(hits), key=lambda op: (op.startswith(("Tensor.", "_operator.")), op))[:3]
    criterion_detail(f"{what}: {'; '.join(shown) if hits else 'not found'}")
    assert hits, f"no compiled graph contains {what}; {_summary(c_run)}"


@pytest.mark.criterion("C", "attention_compiled")
def test_attention_in_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """An attention kernel (sdpa, flex attention, or softmax inside an attention module) is in a graph."""
    hits = []
    for g in _graphs(c_run, "attention_compiled"):
        in_attention = g.ops_in_module("Attention")
        hits += [op for op in in_attention | g.ops
                 if any(a in op for a in ATTENTION_OPS) and (op in in_attention or "softmax" not in op)]
    _assert_found(c_run, criterion_detail, "the attention computation", hits)


@pytest.mark.criterion("C", "mlp_compiled")
def test_mlp_in_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """Ops traced inside the MLP module, its activation among them, are in a graph."""
    hits = [op for g in _graphs(c_run, "mlp_compiled") for op in g.ops_in_module("MLP")]
    acts = [op for op in hits if "silu" in op or "act" in op.lower()]
    _assert_found(c_run, criterion_detail, "the MLP with its activation", acts)


@pytest.mark.criterion("C", "layernorms_compiled")
def test_rmsnorm_in_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """Ops traced inside an RMSNorm module (or an rms_norm op) are in a graph."""
    hits = [op for g in _graphs(c_run, "layernorms_compiled")
            for op in g.ops_in_module("RMSNorm") | {o for o in g.ops if "rms_norm" in o}]
    _assert_found(c_run, criterion_detail, "RMSNorm", hits)


@pytest.mark.criterion("C", "loss_compiled")
def test_loss_in_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """The cross-entropy loss is in a graph."""
    hits = [op for g in _graphs(c_run, "loss_compiled") for op in g.ops if any(x in op for x in LOSS_OPS)]
    _assert_found(c_run, criterion_detail, "the cross-entropy loss", hits)


def _dequant_hits(c_run: CRun, criterion: str) -> list[str]:
    return [op for g in _graphs(c_run, criterion) for op in g.ops if any(x in op for x in DEQUANT_OPS)]


@pytest.mark.criterion("C", "torch_compile_BnB")
def test_dequantization_in_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """The 4-bit weights are dequantized inside a compiled graph."""
    _assert_found(c_run, criterion_detail, "4-bit dequantization", _dequant_hits(c_run, "torch_compile_BnB"))


@pytest.mark.criterion("C", "no_torch_compile_BnB")
def test_dequantization_not_left_outside(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """Clear of the fault when the 4-bit dequantization is inside a compiled graph."""
    _assert_found(c_run, criterion_detail, "4-bit dequantization", _dequant_hits(c_run, "no_torch_compile_BnB"))


@pytest.mark.criterion("C", "use_part_A")
def test_part_a_kernel_in_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """The custom op that the submission's own `dequantize_nf4` traces to is in a graph."""
    if c_run.part_a_error is not None:
        not_measured(c_run.part_a_error)
    assert c_run.part_a_ops is not None, "the submission has no puzzle-A dequantize_nf4"
    assert c_run.part_a_ops, ("the submission's dequantize_nf4 traces to no custom op (only aten ops), "
                              "so it cannot be told apart inside the compiled graphs")
    hits = [op for g in _graphs(c_run, "use_part_A") for op in g.ops if op in c_run.part_a_ops]
    criterion_detail(f"puzzle A's op(s) {sorted(c_run.part_a_ops)}: {'found' if hits else 'not found'} in the graphs")
    assert hits, f"no compiled graph calls {sorted(c_run.part_a_ops)}; dequantization ops found: " \
                 f"{sorted(set(_dequant_hits(c_run, 'use_part_A'))) or 'none'}"


@pytest.mark.criterion("C", "uses_flex_attention")
def test_flex_attention_in_compiled_graphs(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """flex_attention is in a graph (GPU only: FlexAttention has no backward on CPU)."""
    if c_run.device.type != "cuda":
        not_measured(f"FlexAttention has no backward on CPU (torch {torch.__version__}), so training cannot use it here")
    hits = [op for g in _graphs(c_run, "uses_flex_attention") for op in g.ops if "flex_attention" in op]
    _assert_found(c_run, criterion_detail, "flex_attention", hits)


@pytest.mark.criterion("C", "max_autotune_triton_matmul")
def test_max_autotune_triton_matmul_templates(c_run: CRun, criterion_detail: Callable[..., None]) -> None:
    """Inductor was offered Triton matmul templates (max-autotune) when lowering the run's matmuls."""
    if c_run.device.type != "cuda":
        not_measured("Triton matmul templates are GPU-only")
    c_run.fail_if_crashed("max_autotune_triton_matmul")
    tunings = c_run.dynamo.matmul_tunings
    templated = [name for name, triton in tunings if triton]
    criterion_detail(f"{len(templated)} of {len(tunings)} autotuned matmul lowerings offered Triton templates")
    assert templated, (f"no matmul was lowered with Triton templates among its choices ({len(tunings)} autotuned "
                       f"lowerings): max-autotune was not on")

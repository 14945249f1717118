"""Puzzle A: what the candidate launches. One Triton kernel, nothing else; it composes with torch.compile;
inline asm and cache-eviction hints, decided from the kernels actually launched (not from source text)."""

from __future__ import annotations

import pytest
import torch

from grader.measure.device_work import cuda_kernels, record_device_work
from grader.measure.launches import CACHE_HINT, INLINE_ASM, LaunchLog, compile_for, record_launches
from grader.interpreter import limitation
from grader.outcomes import not_measured
from grader.puzzle_a import oracles, standard
from grader.puzzle_a.harness import call_candidate
from grader.puzzle_a.strategies import PUZZLE_DTYPES, WeightCase

# A weight with a partial last block and a partial second-level block.
CASE = WeightCase((257, 131), torch.bfloat16, 1.0, True, True, seed=7)
# Temporaries beyond the output that the single-kernel rule tolerates (a few small metadata tensors).
ALLOCATION_SLACK_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def launched(dequantize_nf4, device) -> tuple[LaunchLog, oracles.Quantized, torch.Tensor]:
    """The launches of one (warm) call on CASE, with the input and the output."""
    q = oracles.quantize(CASE.make(device))
    call_candidate(dequantize_nf4, q)  # warm-up: compilation and autotuning are not the call
    with record_launches() as log:
        out = call_candidate(dequantize_nf4, q)
    return log, q, out


def _submission_kernel(log: LaunchLog):
    if not log.launches:
        pytest.fail("no Triton kernel was launched", pytrace=False)
    return log.launches[0]


@pytest.mark.criterion("A", "single_triton_kernel")
def test_exactly_one_triton_launch(launched, criterion_detail):
    log, q, _ = launched
    assert len(log.launches) == 1, (
        f"expected exactly one Triton kernel launch per call, saw {len(log.launches)}: {log.names or 'none'}")
    criterion_detail(f"one launch: {log.names[0]}")


@pytest.mark.criterion("A", "single_triton_kernel")
def test_no_other_device_work_or_large_temporaries(dequantize_nf4, device, criterion_detail):
    q = oracles.quantize(CASE.make(device))
    call_candidate(dequantize_nf4, q)
    with record_launches() as log, record_device_work(log) as work:
        out = dequantize_nf4(q.weight, q.quant_state)
    out = call_candidate(lambda w, qs: out, q)  # the contract checks, outside the recording
    assert not work.compute_ops, (
        f"the call runs torch operations besides its Triton kernel: {sorted(set(work.compute_ops))}")
    budget = out.numel() * out.element_size() + ALLOCATION_SLACK_BYTES
    assert work.allocated_bytes <= budget, (
        f"the call allocates {work.allocated_bytes} bytes; the output needs {out.numel() * out.element_size()} "
        f"(+{ALLOCATION_SLACK_BYTES} slack): large intermediate buffers")
    if work.peak_cuda_bytes is not None:
        assert work.peak_cuda_bytes <= budget, f"peak extra GPU memory {work.peak_cuda_bytes} bytes > {budget}"
    if device.type == "cuda":
        kernels = cuda_kernels(lambda: dequantize_nf4(q.weight, q.quant_state))
        assert len(kernels) == 1, f"expected one CUDA kernel per call, torch.profiler saw {len(kernels)}: {kernels}"
    criterion_detail(f"allocated {work.allocated_bytes} bytes for a {out.numel() * out.element_size()}-byte output")


@pytest.mark.criterion("A", "kernel_works_in_torch_compile")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_inside_torch_compile_fullgraph(dequantize_nf4, device, dtype, criterion_detail):
    from torch._dynamo.utils import counters

    case = WeightCase((96, 80), dtype, 1.0, False, False, seed=11)
    q = oracles.quantize(case.make(device))

    def f(weight, quant_state):
        return dequantize_nf4(weight, quant_state) * 1  # a neighbouring op, as in a real graph

    torch._dynamo.reset()
    counters.clear()  # bitsandbytes' own internal compiles must not count against the candidate
    compiled = torch.compile(f, fullgraph=True)
    try:
        out = compiled(q.weight, q.quant_state)
    except Exception as exc:
        undecidable = limitation(exc)
        if undecidable:
            not_measured(undecidable)
        raise AssertionError(f"torch.compile(fullgraph=True) failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    breaks = sum(counters["graph_break"].values())
    assert breaks == 0, f"{breaks} graph breaks: {dict(counters['graph_break'])}"
    wrong = standard.judge(out, q.weight, q.quant_state, what="the compiled function's output")
    assert not wrong, "\n".join(wrong)
    criterion_detail(f"fullgraph compile, 0 graph breaks, {counters['stats']['unique_graphs']} graph(s)")


@pytest.mark.criterion("A", "custom_asm_works")
def test_launched_kernel_uses_inline_asm(launched, device, criterion_detail):
    log, _, _ = launched
    kernel = _submission_kernel(log)
    if kernel.compiled is None:
        ok, message, ttir = compile_for(kernel, 90)
        uses = bool(ttir and INLINE_ASM.search(ttir))
        not_measured(f"inline asm cannot run in the Triton interpreter; the launched kernel {kernel.name} "
                     f"{message} with these arguments and {'has' if uses else 'has no'} inline asm in this variant")
    ttir = kernel.ttir() or ""
    assert INLINE_ASM.search(ttir), f"the launched kernel {kernel.name} contains no inline asm (tl.inline_asm_elementwise)"
    criterion_detail(f"{kernel.name} uses inline asm; its output passed the parity checks on {device}")


@pytest.mark.criterion("A", "custom_asm_works")
@pytest.mark.parametrize("dtype", PUZZLE_DTYPES, ids=["fp16", "bf16"])
def test_asm_kernel_is_correct(dequantize_nf4, device, dtype):
    """The asm path, where it runs, meets puzzle A's correctness standard on both output dtypes."""
    if device.type != "cuda":
        not_measured("the asm path only runs on a GPU")
    q = oracles.quantize(WeightCase((1000, 333), dtype, 1.0, True, True, seed=3).make(device))
    out = call_candidate(dequantize_nf4, q)
    wrong = standard.judge(out, q.weight, q.quant_state, what="the asm path")
    assert not wrong, "\n".join(wrong)


@pytest.mark.criterion("A", "uses_cache_eviction")
def test_launched_kernel_has_cache_hints(launched, criterion_detail):
    log, _, _ = launched
    kernel = _submission_kernel(log)
    ttir = kernel.ttir()
    where = "as launched"
    if ttir is None:
        ok, message, ttir = compile_for(kernel, 90)
        assert ok, f"cannot inspect {kernel.name}: it {message}"
        where = "compiled for sm_90 with the launch's arguments"
    hints = sorted({m.group(0) for m in CACHE_HINT.finditer(ttir or "")})
    assert hints, f"no load or store in {kernel.name} ({where}) carries an eviction policy or cache modifier"
    criterion_detail(f"{kernel.name} ({where}): {', '.join(hints)}")


@pytest.mark.criterion("A", "compiles_for_t4")
@pytest.mark.parametrize("capability", [75, 90], ids=["sm_75", "sm_90"])
def test_launched_kernel_compiles_for_target(launched, capability, criterion_detail):
    """The puzzle asks for a Tesla T4 (sm_75); Triton compiles for it without a GPU. Reported, not scored."""
    log, _, _ = launched
    kernel = _submission_kernel(log)
    ok, message, _ = compile_for(kernel, capability)
    assert ok, f"{kernel.name} {message}"
    criterion_detail(f"{kernel.name} {message}")

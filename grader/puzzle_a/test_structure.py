"""Puzzle A: what the candidate launches. One Triton kernel, nothing else; it composes with torch.compile;
inline asm and cache-eviction hints, decided from the kernels actually launched (not from source text).

The launches are recorded in the submission's box (`A.launches`) on the first of `STRUCTURE_CASES` that the
entry point runs on, so a kernel that supports only one dtype or shape is judged on one it supports (the detail
says which, and why the others were passed over).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from grader.box import watchdog
from grader.judging.box_calls import box_call
from grader.judging.outcomes import not_measured
from grader.puzzle_a import oracles, standard
from grader.puzzle_a.harness import call_candidate, modified_inputs
from grader.puzzle_a.strategies import PUZZLE_DTYPES, WeightCase

# Weights with a partial last block and a partial second-level block, in both output dtypes, then smaller ones.
STRUCTURE_CASES = [WeightCase((257, 131), torch.bfloat16, 1.0, True, True, seed=7),
                   WeightCase((257, 131), torch.float16, 1.0, True, True, seed=7),
                   WeightCase((128, 256), torch.float16, 1.0, False, False, seed=8),
                   WeightCase((128, 256), torch.bfloat16, 1.0, False, False, seed=8)]
# Temporaries beyond the output that the single-kernel rule tolerates (a few small metadata tensors).
ALLOCATION_SLACK_BYTES = 64 * 1024
# Compiling each launched kernel for sm_75 and sm_90 besides the calls themselves.
LAUNCHES_FLOOR_S = 240.0
# dynamo and inductor compiling the candidate's function.
COMPILE_FLOOR_S = 300.0


def _case_name(case: WeightCase) -> str:
    return f"{case.shape} {str(case.dtype).removeprefix('torch.')}"


@pytest.fixture(scope="module")
def launched(a_box, device, progress) -> dict[str, Any]:
    """The box's record of one warm call's launches and device work, on the first case the candidate runs."""
    cases = [oracles.quantize(c.make(device)) for c in STRUCTURE_CASES]
    with progress.step("A: the launched kernel's structure", "one warm call's launches and device work "
                                                             "recorded, each kernel compiled for sm_75 and sm_90"):
        facts = box_call(a_box, "A.launches", [(q.weight, q.quant_state) for q in cases],
                         doing="recording the launches",
                         deadline=watchdog.deadline(device.type, floor_s=LAUNCHES_FLOOR_S))
    if facts["case"] is None:
        undecidable = [t["undecidable"] for t in facts["tried"] if t["undecidable"]]
        if undecidable:
            not_measured(f"the entry point ran on none of the structure cases here: {undecidable[0]}")
        pytest.fail(f"the entry point ran on none of the structure cases: {_passed_over(facts)}", pytrace=False)
    facts["case_name"] = _case_name(STRUCTURE_CASES[facts["case"]])
    q = cases[facts["case"]]
    broken = modified_inputs(q, facts["inputs_after"], a_box) + facts["state_changes"]
    for what, out in facts["observed_outputs"].items():
        broken += ([f"the call with {what} returned no plain tensor"] if out is None else
                   standard.judge(out, q.weight, q.quant_state, what=f"the output of the call with {what}").failures)
    if broken:
        pytest.fail(f"the calls observed for the kernel's structure (its launches and device work recorded) broke the "
                    f"contract {_on(facts)}, so what they showed is not evidence: " + "; ".join(broken), pytrace=False)
    return facts


def _passed_over(facts: dict[str, Any]) -> str:
    return "; ".join(f"{_case_name(STRUCTURE_CASES[t['case']])}: {t['error']}" for t in facts["tried"])


def _on(facts: dict[str, Any]) -> str:
    """Which case the structure was judged on, and why earlier ones were passed over."""
    return f"on {facts['case_name']}" + (f" (passed over: {_passed_over(facts)})" if facts["tried"] else "")


def _submission_kernel(facts: dict[str, Any]) -> dict[str, Any]:
    if not facts["kernels"]:
        pytest.fail(f"no Triton kernel was launched {_on(facts)}", pytrace=False)
    return facts["kernels"][0]


def _host_syncs(ops: list[str]) -> list[str]:
    return [op for op in ops if "_local_scalar_dense" in op or "item" in op.split(".")[-1]]


@pytest.mark.criterion("A", "single_triton_kernel")
def test_exactly_one_triton_launch(launched, criterion_detail):
    names = [k["name"] for k in launched["kernels"]]
    assert len(names) == 1, (
        f"expected exactly one Triton kernel launch per call, saw {len(names)}: {names or 'none'} {_on(launched)}")
    criterion_detail(f"one launch: {names[0]} {_on(launched)}")


@pytest.mark.criterion("A", "single_triton_kernel")
def test_no_other_device_work_or_large_temporaries(launched, device, criterion_detail):
    ops = launched["compute_ops"]
    syncs = _host_syncs(ops)
    assert not syncs, (f"the call reads a value back to the host ({sorted(set(syncs))}: a .item() or similar host "
                       f"sync, which waits for the device on every call) {_on(launched)}")
    assert not ops, f"the call runs torch operations besides its Triton kernel: {sorted(set(ops))} {_on(launched)}"
    out_bytes, allocated = launched["output_bytes"], launched["allocated_bytes"]
    budget = out_bytes + ALLOCATION_SLACK_BYTES
    assert allocated <= budget, (
        f"the call allocates {allocated} bytes; the output needs {out_bytes} (+{ALLOCATION_SLACK_BYTES} slack): large "
        f"intermediate buffers {_on(launched)}")
    if launched["peak_cuda_bytes"] is not None:
        assert launched["peak_cuda_bytes"] <= budget, f"peak extra GPU memory {launched['peak_cuda_bytes']} bytes > {budget}"
    profiled = ""
    if device.type == "cuda":
        kernels = launched["cuda_kernels"]
        if kernels or not launched["kernels"]:
            assert len(kernels) == 1, f"expected one CUDA kernel per call, torch.profiler saw {len(kernels)}: {kernels}"
            profiled = "; torch.profiler saw one CUDA kernel"
        else:  # a Triton launch was recorded and the profiler saw nothing: the profiler did not work in the box
            profiled = "; torch.profiler saw no CUDA kernel at all in the box, so the CUDA kernel count is left out"
    criterion_detail(f"allocated {allocated} bytes for a {out_bytes}-byte output {_on(launched)}{profiled}")


@pytest.mark.criterion("A", "kernel_works_in_torch_compile")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_inside_torch_compile_fullgraph(a_box, device, dtype, criterion_detail, progress):
    case = WeightCase((96, 80), dtype, 1.0, False, False, seed=11)
    q = oracles.quantize(case.make(device))
    with progress.step("A: dequantize_nf4 inside torch.compile(fullgraph=True)", _case_name(case)):
        got = box_call(a_box, "A.compiled", q.weight, q.quant_state, doing="torch.compile(fullgraph=True)",
                       deadline=watchdog.deadline(device.type, floor_s=COMPILE_FLOOR_S))
    breaks = sum(got["graph_breaks"].values())
    assert breaks == 0, f"{breaks} graph breaks: {got['graph_breaks']}"
    assert got["output"] is not None, "the compiled function returned no tensor"
    verdict = standard.judge(got["output"], q.weight, q.quant_state, what="the compiled function's output")
    assert verdict.passed, verdict.message()
    criterion_detail(f"fullgraph compile, 0 graph breaks, {got['graphs']} graph(s)")


@pytest.mark.criterion("A", "custom_asm_works")
def test_launched_kernel_uses_inline_asm(launched, device, criterion_detail):
    kernel = _submission_kernel(launched)
    if not kernel["compiled_on_device"]:
        sm90 = kernel["sm_90"]
        not_measured(f"inline asm cannot run in the Triton interpreter; the launched kernel {kernel['name']} "
                     f"{sm90['message']} with these arguments and {'has' if kernel['inline_asm'] else 'has no'} "
                     f"inline asm in this variant")
    assert kernel["inline_asm"], (f"the launched kernel {kernel['name']} contains no inline asm "
                                  f"(tl.inline_asm_elementwise) {_on(launched)}")
    criterion_detail(f"{kernel['name']} uses inline asm; its output passed the parity checks on {device}")


@pytest.mark.criterion("A", "custom_asm_works")
@pytest.mark.parametrize("dtype", PUZZLE_DTYPES, ids=["fp16", "bf16"])
def test_asm_kernel_is_correct(a_box, device, dtype):
    """The asm path, where it runs, meets puzzle A's correctness standard on both output dtypes."""
    if device.type != "cuda":
        not_measured("the asm path only runs on a GPU")
    q = oracles.quantize(WeightCase((1000, 333), dtype, 1.0, True, True, seed=3).make(device))
    out = call_candidate(a_box, q)
    verdict = standard.judge(out, q.weight, q.quant_state, what="the asm path")
    assert verdict.passed, verdict.message()


@pytest.mark.criterion("A", "uses_cache_eviction")
def test_launched_kernel_has_cache_hints(launched, criterion_detail):
    kernel = _submission_kernel(launched)
    where = "as launched"
    if not kernel["compiled_on_device"]:
        assert kernel["sm_90"]["ok"], f"cannot inspect {kernel['name']}: it {kernel['sm_90']['message']}"
        where = "compiled for sm_90 with the launch's arguments"
    assert kernel["cache_hints"], (f"no load or store in {kernel['name']} ({where}) carries an eviction policy or "
                                   f"cache modifier {_on(launched)}")
    criterion_detail(f"{kernel['name']} ({where}): {', '.join(kernel['cache_hints'])} {_on(launched)}")


@pytest.mark.criterion("A", "compiles_for_t4")
@pytest.mark.parametrize("capability", [75, 90], ids=["sm_75", "sm_90"])
def test_launched_kernel_compiles_for_target(launched, capability, criterion_detail):
    """The puzzle asks for a Tesla T4 (sm_75); Triton compiles for it without a GPU. Reported, not scored."""
    kernel = _submission_kernel(launched)
    compiled = kernel[f"sm_{capability}"]
    assert compiled["ok"], f"{kernel['name']} {compiled['message']}"
    criterion_detail(f"{kernel['name']} {compiled['message']} {_on(launched)}")

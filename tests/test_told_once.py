"""One crash, or one error, that stops several criteria is told once, where it happened; every other criterion it
stopped fails with a one-line pointer there. C's crashed training run tells it on `correct`, or on the first graded
criterion (in the rubric's order) whose test judges the run (`grader.puzzle_c.run.CRun.fail_if_crashed`); an error of
a fixture that several criteria's tests share is told by the first test it failed
(`grader.plugins.grading.told_elsewhere`); a box whose runner ended twice points to the calls' criteria
(tests/test_box.py)."""

from __future__ import annotations


import pytest
import torch

from grader.puzzle_c.run import CRun, setting
from tests.verdicts import run_graded

ERROR = "recording the launches failed: ValueError: no kernel for bfloat16 (raised at sub.py:3 in dequantize_nf4)"
SHARED = f'''
import pytest


@pytest.fixture(scope="module")
def launched():
    pytest.fail({ERROR!r}, pytrace=False)


@pytest.mark.criterion("A", "single_triton_kernel")
def test_one_launch(launched):
    pass


@pytest.mark.criterion("A", "single_triton_kernel")
def test_no_other_device_work(launched):
    pass


@pytest.mark.criterion("A", "uses_cache_eviction")
def test_cache_hints(launched):
    pass
'''


def test_a_shared_fixtures_error_is_told_by_the_first_test_and_pointed_to_by_the_others(pytester, monkeypatch):
    pytester.makepyfile(test_shared=SHARED)
    result, card = run_graded(pytester, monkeypatch)
    result.assert_outcomes(errors=3)
    criteria = card["puzzles"]["A"]["criteria"]
    assert ERROR in criteria["single_triton_kernel"]["detail"], criteria["single_triton_kernel"]
    pointer = "error in setup: not judged: a setup step it shares failed (see A.single_triton_kernel)"
    eviction = criteria["uses_cache_eviction"]
    assert eviction["status"] == "failed" and eviction["detail"] == pointer, eviction
    # The section alone: pytest's short summary after it repeats each error's message, and cuts it to the terminal's width.
    why = result.stdout.str().split("grader: why criteria failed")[1].split("\n=")[0]
    assert why.count(ERROR) == 1 and pointer in why, why


def _crashed_run(graded: set[str]) -> CRun:
    run = setting(torch.device("cpu"), 1)
    run.error = "TorchRuntimeError: ... (raised at sub.py:15 in loss)"
    run.graded = frozenset(graded)
    return run


def _said(run: CRun, criterion: str, detail: str = "") -> str:
    with pytest.raises(pytest.fail.Exception) as failed:
        run.fail_if_crashed(criterion, detail)
    return str(failed.value)


def test_cs_crashed_run_is_told_on_correct_and_pointed_to_by_every_other_criterion():
    run = _crashed_run({"correct", "no_graph_breaks", "mlp_compiled", "global_state_untouched"})
    assert run.crash_holder() == "correct"
    assert _said(run, "correct") == f"the compiled training run crashed: {run.error}"
    assert _said(run, "mlp_compiled") == "not judged: the compiled training run crashed (see C.correct)"
    assert _said(run, "no_graph_breaks", "graph breaks before the crash:\n  x.py:3: Tensor.item()") == (
        "not judged: the compiled training run crashed (see C.correct)\ngraph breaks before the crash:\n"
        "  x.py:3: Tensor.item()")
    run.error = None
    run.fail_if_crashed("mlp_compiled")  # a run that did not crash fails nothing


def test_without_correct_the_first_graded_criterion_that_judges_the_run_here_tells_the_crash():
    # On a CPU, flex attention and max-autotune are not judged; use_part_A is not without puzzle A's ops.
    run = _crashed_run({"uses_flex_attention", "use_part_A", "excessive_recompilation", "layernorms_compiled",
                        "max_autotune_triton_matmul"})
    assert run.crash_holder() == "excessive_recompilation"
    assert _said(run, "layernorms_compiled").endswith("(see C.excessive_recompilation)")
    run.part_a_ops = frozenset({"unsloth_puzzles::dequantize_nf4"})
    assert run.crash_holder() == "use_part_A"
    run.device = torch.device("cuda")  # the schedule is the CPU's; only the device decides what is judged
    assert run.crash_holder() == "uses_flex_attention"

"""Puzzle A's grader catches each deliberately broken submission on the right criterion, with a clear
message, and gives the reference every point that can be measured on this machine."""

from __future__ import annotations

import pytest

from tests.verdicts import BROKEN, assert_scores_every_measurable_point, grade, statuses

# (submission, criteria to run, criterion that must fail, words its message must contain)
BROKEN_A = [
    ("a_ignores_offset", ("A.correct",), "correct", "ulp"),
    ("a_swaps_nibbles", ("A.correct",), "correct", "ulp"),
    ("a_drops_last_partial_block", ("A.correct",), "correct", "elements"),
    ("a_forces_fp16", ("A.correct",), "correct", "expected quant_state.dtype torch.bfloat16"),
    ("a_linear_absmax", ("A.correct",), "correct", "ulp"),
    ("a_caches_by_pointer", ("A.correct",), "correct", "rewritten in place"),
    ("a_mutates_quant_state", ("A.correct",), "correct", "quant_state.offset was replaced"),
    ("a_wrong_shape", ("A.correct",), "correct", "expected quant_state.shape"),
    ("a_two_launches", ("A.correct", "A.single_triton_kernel"), "single_triton_kernel", "saw 2"),
    ("a_calls_bitsandbytes", ("A.correct", "A.single_triton_kernel"), "single_triton_kernel", "saw 0"),
    ("a_breaks_the_graph", ("A.correct", "A.kernel_works_in_torch_compile"), "kernel_works_in_torch_compile",
     "torch.compile(fullgraph=True) failed"),
    ("a_forces_fp16", ("A.tested_in_f16_and_bf16",), "tested_in_f16_and_bf16", "dtype"),
    # The plain kernel is correct but gives its loads and stores no eviction or cache hints.
    ("a_plain_control", ("A.uses_cache_eviction",), "uses_cache_eviction", "eviction policy or cache modifier"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,criteria,failing,words", BROKEN_A, ids=[f"{b[0]}-{b[2]}" for b in BROKEN_A])
def test_broken_submission_fails_on_its_criterion(pytester, name, criteria, failing, words):
    card = grade(pytester, BROKEN / f"{name}.py", puzzles=("A",), criteria=criteria)
    got = statuses(card, "A")
    assert got[failing] == "failed", f"{name}: expected {failing} to fail, got {got}\n{card['output'][-2000:]}"
    detail = card["puzzles"]["A"]["criteria"][failing]["detail"]
    assert words in detail, f"{name}: the failure message does not say {words!r}:\n{detail}"
    others = {c.split(".")[1] for c in criteria} - {failing}
    assert all(got[c] == "passed" for c in others), f"{name}: only {failing} should fail, got {got}"
    assert card["exit_code"] != 0, f"{name}: a failing submission must give a non-zero exit status"
    if failing == "correct":
        assert card["puzzles"]["A"]["score"] == 0 and not card["puzzles"]["A"]["correct"]


@pytest.mark.slow
def test_plain_control_kernel_passes_parity(pytester):
    """The unbroken simple kernel passes `correct`: the faults above, not the harness, are what fail."""
    card = grade(pytester, BROKEN / "a_plain_control.py", puzzles=("A",), criteria=("A.correct",))
    assert statuses(card, "A") == {"correct": "passed"}, card["output"][-2000:]


@pytest.mark.slow
def test_reference_scores_every_measurable_point(pytester):
    card = grade(pytester, "solutions", puzzles=("A",))
    # CPU: single kernel 3 + torch.compile 1 + cache eviction 1 + fp16/bf16 1; speed and asm need a GPU.
    assert_scores_every_measurable_point(card, "A", gpu_only=("speedup", "custom_asm_works"), cpu_score=6)


@pytest.mark.slow
@pytest.mark.parametrize("threshold,exit_ok", [(3, True), (4, False)])
def test_min_score_gates_the_exit_status(pytester, threshold, exit_ok):
    """`--min-score A=N` decides the exit status from the points: the plain kernel earns 3 for one launch."""
    card = grade(pytester, BROKEN / "a_plain_control.py", puzzles=("A",),
                 criteria=("A.correct", "A.single_triton_kernel"), extra=("--min-score", f"A={threshold}"))
    assert card["puzzles"]["A"]["score"] == 3, card["puzzles"]["A"]
    assert (card["exit_code"] == 0) == exit_ok, f"--min-score A={threshold} with 3 points gave exit {card['exit_code']}"
    assert f"--min-score A={threshold}: scored 3 -> {'ok' if exit_ok else 'BELOW'}" in card["output"]

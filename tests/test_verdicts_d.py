"""Puzzle D's grader catches each deliberately broken submission on the right criterion, with a clear
message, and gives the reference (and the unbroken plain version) every point measurable on this machine.

Each broken submission runs only the criteria it targets (plus `correct` where that must still pass).
"""

from __future__ import annotations

import pytest

from tests.verdicts import BROKEN, assert_scores_every_measurable_point, grade, graded_on_gpu, statuses

# (submission, expected status of each criterion run, words the first failing criterion's detail must contain)
BROKEN_D = [
    ("d_averages_chunks", {"correct": "failed"}, "result differs from the full-logit computation"),
    ("d_averages_chunks", {"llama_1B_training_loss_matches": "failed"},
     "D.llama_1B_training_loss_matches: per-step training loss"),
    ("d_no_weight_or_bias_gradient", {"correct": "failed"}, "no gradient arrived"),
    ("d_ignores_upstream_gradient", {"correct": "failed"}, "against the float64 truth exceeds"),
    ("d_drops_remainder_rows", {"correct": "failed", "allows_dynamic_chunk_sizes": "failed"},
     "against the float64 truth exceeds"),
    ("d_full_logits_in_one_piece", {"correct": "passed", "VRAM_50_percent_reduction": "failed"},
     "the naive full-logit version's"),
    ("d_logits_saved_for_backward", {"correct": "passed", "VRAM_50_percent_reduction": "failed"},
     "the naive full-logit version's"),
    ("d_full_logits_in_one_piece", {"GRPO_memory_efficient_linear_works": "failed"},
     "D.GRPO_memory_efficient_linear_works: GRPO: peak"),
    ("d_hand_written_ce_gradients", {"correct": "passed", "hardcoded_gradients": "failed"},
     "D.hardcoded_gradients: result differs from the full-logit computation"),
    ("d_hand_written_ce_gradients", {"show_ce_loss_works": "failed"},
     "D.show_ce_loss_works: result differs from the full-logit computation"),
    ("d_hand_written_ce_gradients", {"show_other_functions_work": "failed"},
     "D.show_other_functions_work: result differs from the full-logit computation"),
    ("d_bf16_logits_into_loss", {"remove_float32_upcast": "failed"}, "bfloat16 logits for torch.float"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,expected,words", BROKEN_D, ids=[f"{b[0]}-{next(c for c, s in b[1].items() if s == 'failed')}" for b in BROKEN_D])
def test_broken_submission_fails_on_its_criterion(pytester, name, expected, words):
    card = grade(pytester, BROKEN / f"{name}.py", puzzles=("D",), criteria=tuple(f"D.{c}" for c in expected))
    got = statuses(card, "D")
    assert got == expected, f"{name}: expected {expected}, got {got}\n{card['output'][-3000:]}"
    failing = next(c for c, s in expected.items() if s == "failed")
    detail = card["puzzles"]["D"]["criteria"][failing]["detail"]
    assert words in detail, f"{name}: the {failing} message does not say {words!r}:\n{detail}"
    assert card["exit_code"] != 0, f"{name}: a failing submission must give a non-zero exit status"
    d = card["puzzles"]["D"]
    if got.get("correct") == "failed":
        assert d["score"] == 0 and not d["correct"]


@pytest.mark.slow
@pytest.mark.parametrize("submission", ["solutions", str(BROKEN / "d_plain_control.py")], ids=["reference", "control"])
def test_scores_every_point_measurable_here(pytester, submission):
    """Every D criterion is decidable on a CPU (VRAM from fake tensors), so both score 10 of 10."""
    card = grade(pytester, submission, puzzles=("D",))
    assert_scores_every_measurable_point(card, "D", cpu_score=10)
    vram = card["puzzles"]["D"]["criteria"]["VRAM_50_percent_reduction"]["detail"]
    assert ("fake-tensor estimate" in vram) != graded_on_gpu(card), vram

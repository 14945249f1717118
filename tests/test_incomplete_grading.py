"""One truth in every output when a grading could not decide: a gate not measured, or a criterion lost to the
grader's own failure (its out-of-memory error, say), reads the same in the text scorecard, the JSON and the exit
status; it is never a pass, never the submission's failure."""

from __future__ import annotations

import pytest
import torch  # at collection: an in-process pytester run of another test module may drop torch from sys.modules

from grader.judging.outcomes import GRADER
from grader.measure.memory import out_of_memory, requested_bytes
from grader.plugins.grading import exit_status
from grader.scoring.results import GraderSession, TestResult
from grader.scoring.rubric import PUZZLES, Outcome, score
from grader.scoring.scorecard import INCOMPLETE_EXIT_STATUS, PuzzleCard, Scorecard, leaderboard_markdown


def _card(letter: str, **outcomes: Outcome) -> PuzzleCard:
    every = {c.name: outcomes.get(c.name, Outcome("passed")) for c in PUZZLES[letter].criteria}
    return PuzzleCard(letter, score(PUZZLES[letter], every), every)


def _scorecard(*cards: PuzzleCard) -> Scorecard:
    return Scorecard("sub.py", 1, "ci", {}, {c.letter: c for c in cards}, "pytest grader/")


def test_a_gate_not_measured_is_null_provisional_and_incomplete_everywhere():
    card = _scorecard(_card("D", correct=Outcome("not_measured", detail="needs CUDA: the submission calls .cuda()")))
    puzzle = card.as_json()["puzzles"]["D"]
    assert puzzle["correct"] is None and puzzle["provisional"] is True and puzzle["complete"] is False
    assert puzzle["incomplete"] == ["gate correct not decided: needs CUDA: the submission calls .cuda()"]
    assert card.as_json()["complete"] is False
    assert "INCOMPLETE, provisional (gate not decided here: correct" in "\n".join(card.lines())
    assert exit_status(card, {}, criterion_failed=False) == INCOMPLETE_EXIT_STATUS
    assert exit_status(card, {"D": 1}, criterion_failed=False) == INCOMPLETE_EXIT_STATUS  # not a failing grade
    assert "0/10 ?*" in leaderboard_markdown([card.as_json()])


def test_a_criterion_lost_to_the_graders_failure_makes_the_grading_incomplete_not_failed():
    lost = Outcome("not_measured", detail="the grader ran out of memory in its own work", grader_failure=True)
    card = _scorecard(_card("C", excessive_recompilation=lost))
    puzzle = card.as_json()["puzzles"]["C"]
    assert puzzle["correct"] is True and puzzle["complete"] is False
    assert puzzle["criteria"]["excessive_recompilation"]["grader_failure"] is True
    assert puzzle["incomplete"] == ["excessive_recompilation: the grader ran out of memory in its own work"]
    assert "INCOMPLETE (the grader failed in its own work: excessive_recompilation)" in "\n".join(card.lines())
    assert exit_status(card, {}, criterion_failed=False) == INCOMPLETE_EXIT_STATUS


def test_a_failed_gate_is_a_failing_grade_whatever_else_is_incomplete():
    lost = Outcome("not_measured", detail="out of memory", grader_failure=True)
    card = _scorecard(_card("C", correct=Outcome("failed", detail="C.correct: ..."), no_graph_breaks=lost))
    assert card.as_json()["puzzles"]["C"]["correct"] is False
    assert exit_status(card, {}, criterion_failed=True) == pytest.ExitCode.TESTS_FAILED


def test_a_complete_grading_exits_on_its_criteria_and_min_scores():
    card = _scorecard(_card("C", uses_flex_attention=Outcome("not_measured", detail="needs a GPU")))
    assert card.as_json()["puzzles"]["C"]["complete"] is True  # a CPU's limits leave it complete, provisional
    assert exit_status(card, {}, criterion_failed=False) == pytest.ExitCode.OK
    assert exit_status(card, {"C": 9}, criterion_failed=False) == pytest.ExitCode.TESTS_FAILED


def test_a_graders_failure_folds_into_its_criterions_outcome():
    s = GraderSession("sub.py", 1, ["C"], [], {})
    s.results[("C", "correct")] = [TestResult("t::a", "not_measured", message="out of memory", cause=GRADER)]
    s.results[("C", "mlp_compiled")] = [TestResult("t::b", "not_measured", message="needs a GPU")]
    assert s.outcome("C", "correct").grader_failure is True
    assert s.outcome("C", "mlp_compiled").grader_failure is False


def test_out_of_memory_errors_are_recognised_by_type_and_the_failed_allocation_read():

    assert out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB"))
    assert out_of_memory(MemoryError())
    assert not out_of_memory(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert requested_bytes(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1024.00 MiB. GPU 0 has a "
                                                  "total capacity of 79.19 GiB")) == 2**30
    assert requested_bytes(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 4096 bytes.")) \
        == 4096
    assert requested_bytes(MemoryError()) == 0

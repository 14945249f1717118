"""Puzzle C's correctness standard on hand-made training records: what `correct` says, and in which order."""

from __future__ import annotations

import torch

from grader.puzzle_c import standard
from grader.puzzle_c.training import MicroStep, TrainRecord

NAMES = [f"base_model.model.model.layers.{i}.self_attn.{p}.lora_{ab}.default.weight"
         for i in range(2) for p in ("q_proj", "o_proj") for ab in "AB"]


def _record(grads: dict[str, torch.Tensor | None], loss: float = 2.0) -> TrainRecord:
    return TrainRecord(losses=[loss], micro=[MicroStep(0, 2, 64, loss, 0, 0.1)], step_grads=[grads])


def _oracle_and_floor() -> tuple[TrainRecord, TrainRecord, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    oracle = {n: torch.randn(8, 8, generator=g) for n in NAMES}
    floor = {n: t * (1 + 1e-3 * torch.randn(8, 8, generator=g)) for n, t in oracle.items()}
    return _record(oracle), _record(floor), oracle


def test_an_adapter_without_gradient_is_named_first_even_when_other_gradients_moved_further():
    """As on the H200: o_proj's adapter left out, and every other LoRA gradient moved by more than 1 of its norm."""
    oracle, floor, grads = _oracle_and_floor()
    run = {n: (None if ".o_proj." in n else -1.5 * t) for n, t in grads.items()}
    verdict = standard.judge(_record(run), oracle, floor)
    assert verdict.failures[0].startswith("C.correct: LoRA weights without a usable gradient")
    assert "in 4 of 8 (step, LoRA weight) pairs" in verdict.failures[0]
    assert "step 0, layers.0.self_attn.o_proj.lora_A: no gradient" in verdict.failures[0]
    assert any("scaled differently" in f for f in verdict.failures[1:])


def test_a_non_finite_gradient_is_named_as_such():
    oracle, floor, grads = _oracle_and_floor()
    run = dict(grads)
    run[NAMES[0]] = torch.full((8, 8), float("nan"))
    verdict = standard.judge(_record(run), oracle, floor)
    assert "step 0, layers.0.self_attn.q_proj.lora_A: non-finite gradient" in verdict.failures[0]


def test_a_run_within_the_floor_has_no_failures():
    oracle, floor, grads = _oracle_and_floor()
    verdict = standard.judge(_record({n: t.clone() for n, t in grads.items()}), oracle, floor)
    assert verdict.failures == []
    assert verdict.used <= 1.0

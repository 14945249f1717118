"""D.llama_1B_training_loss_matches: a Llama whose LM head + loss run through the submission trains like the stock one.

`grader.puzzle_d.training` builds and trains the model: stock here in the judge, through the submission in its box,
from the same weights, the same AdamW steps on the same batches. Checked by `standard.compare_training`: the
per-step losses, every parameter's gradient at the first step and each parameter's final weights, by relative
norms (the tolerances and their reasons are there).
"""

from __future__ import annotations

import time

import pytest

from grader.box import watchdog
from grader.judging.box_calls import box_call
from grader.puzzle_d import training
from grader.puzzle_d.standard import compare_training

TRAINING_FLOOR_S = 600.0


@pytest.mark.criterion("D", "llama_1B_training_loss_matches")
def test_llama_trains_like_stock(memory_efficient_linear, device, criterion_name, criterion_detail, progress):
    """Stock `LlamaForCausalLM(labels=...)` loss against hidden states -> submission(lm_head, CE)."""
    spec = training.spec_for(device)
    steps = f"{spec.name}, {training.STEPS} AdamW steps"
    stock = training.build(device)
    names = [n for n, _ in stock.named_parameters()]
    initial = [p.detach().clone() for p in stock.parameters()]
    start = time.perf_counter()
    with progress.step("D: Llama training with the stock loss, the reference", steps):
        expected = training.train(stock, training.batches(stock, device), training.stock_loss)
    reference_s = time.perf_counter() - start
    del stock
    with progress.step("D: Llama training through memory_efficient_linear, in its box", steps):
        got = box_call(memory_efficient_linear, "D.llama", doing="training through the submission",
                       deadline=watchdog.deadline(device.type, reference_s, floor_s=TRAINING_FLOOR_S))
    ours = training.TrainingRun(got["losses"], got["first_grads"], got["final"])
    verdict = compare_training(ours, expected, initial, names, model=spec.name, steps=training.STEPS)
    criterion_detail(f"{spec.name}, random weights, {training.STEPS} AdamW steps: losses "
                     f"{['%.5f' % v for v in ours.losses]} vs stock {['%.5f' % v for v in expected.losses]}; "
                     + verdict.summary)
    assert verdict.passed, "\n".join(f"{criterion_name}: {failure}" for failure in verdict.failures)

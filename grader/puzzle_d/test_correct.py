"""D.correct, the gate: the cross-entropy loss and its gradients against the full-logit computation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from grader.box import watchdog
from grader.puzzle_d.harness import run_candidate
from grader.puzzle_d.losses import cross_entropy
from grader.puzzle_d.strategies import Problem, problems_and_chunk_sizes, upstream_scales

CASES = problems_and_chunk_sizes()


@pytest.mark.criterion("D", "correct")
def test_result_comes_from_an_autograd_function(memory_efficient_linear, device):
    X, linear, labels = Problem((3, 5), 8, 11, torch.float32, True, 0.0, 1.0, seed=0).build(device)
    _, facts = run_candidate(memory_efficient_linear, X, linear, labels, cross_entropy(labels), 4, 1.0,
                             deadline=watchdog.deadline(device.type))
    assert facts["autograd_function"], (
        f"D.correct: the result's grad_fn is {facts['grad_fn']}, not the backward of a torch.autograd.Function")


@pytest.mark.criterion("D", "correct")
@example(case=(Problem((2, 7), 16, 50, torch.float32, True, 1.0, 1.0, seed=1), 3), upstream=2.0)  # all ignored
@example(case=(Problem((13,), 9, 37, torch.bfloat16, True, 0.25, 4.0, seed=2), 1), upstream=-0.5)  # 1 row a chunk
@example(case=(Problem((3, 10), 24, 101, torch.float32, False, 0.0, 1.0, seed=3), 7), upstream=3.0)  # remainder
@example(case=(Problem((64,), 64, 32000, torch.float16, False, 0.0, 1.0, seed=4), 16), upstream=65536.0)  # loss scale
# Float16 gradients below the normal range (1e-4 logit scale) until a loss scale lifts them: formed before the scale
# arrives and multiplied by it afterwards, they have underflowed (d_scales_fp16_gradients_after fails here by 15x).
@example(case=(Problem((64,), 64, 1000, torch.float16, False, 0.0, 1e-4, seed=13), 16), upstream=65536.0)
@given(case=CASES, upstream=upstream_scales())
def test_cross_entropy_matches_full_logits(parity, device, case, upstream):
    """Mean over valid tokens with ignore_index; any rows, widths, dtype, mask density, chunk size, upstream."""
    problem, chunk_size = case
    X, linear, labels = problem.build(device)
    parity(repr(problem), X, linear, labels, cross_entropy(labels), chunk_size, upstream)


@pytest.mark.criterion("D", "correct")
def test_each_call_returns_new_tensors(memory_efficient_linear, device):
    """A caller keeps each result (the loss of one step, the gradients autograd hands out): a later call, on other
    inputs of the same or another shape, must leave an earlier loss and gradients as they were and share no memory
    with them."""
    problems = [Problem((3, 5), 8, 11, torch.float32, True, 0.0, 1.0, seed=31),
                Problem((3, 5), 8, 11, torch.float32, True, 0.0, 1.0, seed=32),
                Problem((4, 6), 8, 13, torch.float32, False, 0.0, 1.0, seed=33)]
    names = [f"result-{i}" for i in range(len(problems))]
    deadline = watchdog.deadline(device.type)
    held = []
    try:
        for i, (problem, name) in enumerate(zip(problems, names)):
            X, linear, labels = problem.build(device)
            got, facts = run_candidate(memory_efficient_linear, X, linear, labels, cross_entropy(labels), 4, 1.0,
                                       deadline=deadline, keep=name)
            shared = {what: earlier for what, earlier in facts["shares_kept"].items() if earlier}
            assert not shared, (f"D.correct: call {i + 1}'s results share memory with results of earlier calls, which "
                                f"the caller still holds ({shared}): return new tensors from every call")
            held.append({"loss": got.loss, **got.grads})
        for i, (name, results) in enumerate(zip(names, held)):
            for what, tensor in results.items():
                if tensor is None:
                    continue
                now = memory_efficient_linear.run("box.fetch", f"{name}.{what}", deadline=deadline)
                assert torch.equal(now.reshape(tensor.shape), tensor), (
                    f"D.correct: the {what} of call {i + 1} was overwritten by a later call (a caller still held it); "
                    f"return new tensors from every call")
    finally:
        memory_efficient_linear.run("box.drop", *(f"{n}.{w}" for n in names for w in ("loss", "X", "weight", "bias")),
                                    deadline=deadline)

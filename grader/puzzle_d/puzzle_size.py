"""D's memory criteria at the puzzle's size: the inputs, the naive full-logit run, and both peaks measured, the
naive one in the judge and the submission's in its box.

On a GPU the peaks come from the CUDA allocator; elsewhere from fake tensors (`grader.measure.memory`),
so the full size is decided on a CPU without allocating it.
"""

from __future__ import annotations

import torch

from grader.box import watchdog
from grader.box.client import Box
from grader.judging.box_calls import box_call
from grader.measure.memory import MemoryPeak, cuda_peak, fake_tensor_peak
from grader.puzzle_d.losses import ForwardFunction, cross_entropy, grpo
from grader.puzzle_d.standard import MemoryComparison

# Llama-3 8B's LM head over bsz 4 x qlen 4096 tokens, in bfloat16.
PUZZLE_SHAPE = {"bsz": 4, "qlen": 4096, "hidden": 4096, "vocab": 128256}
PUZZLE_TEXT = "bsz 4, qlen 4096, hd 4096, vocab 128256, bf16, fwd+bwd"

Inputs = tuple[torch.Tensor, torch.nn.Linear, torch.Tensor, ForwardFunction]


def puzzle_inputs(device: torch.device, loss: str) -> Inputs:
    """Puzzle-size X, LM head, labels and loss (`"ce"` or `"grpo"`); under FakeTensorMode nothing is allocated."""
    b, t, h, v = (PUZZLE_SHAPE[k] for k in ("bsz", "qlen", "hidden", "vocab"))
    X = torch.randn(b, t, h, dtype=torch.bfloat16, device=device).requires_grad_(True)
    linear = torch.nn.Linear(h, v, bias=False, dtype=torch.bfloat16, device=device)
    tokens = torch.randint(0, v, (b, t), device=device)
    if loss == "ce":
        return X, linear, tokens, cross_entropy(tokens, normaliser=float(b * t))
    batch = torch.stack([tokens.float(), torch.randn(b, t, device=device), torch.full((b, t), -5.0, device=device),
                         torch.full((b, t), -5.0, device=device), torch.ones(b, t, device=device)], dim=-1)
    return X, linear, batch, grpo(batch, normaliser=float(b * t))


def naive(state: Inputs) -> None:
    """The naive version: the forward function over all rows at once, then backward."""
    X, linear, labels, forward_function = state
    rows = X.reshape(-1, X.shape[-1])
    forward_function(rows, linear, labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])).backward()


MEMORY_FLOOR_S = 600.0  # forward + backward at the puzzle's size: on fake tensors, seconds; on a GPU, the real thing


def measure(box: Box, device: torch.device, loss: str) -> tuple[MemoryComparison, str]:
    """Peaks of the submission (its own chunk size, measured in its box: `grader.puzzle_d.tasks.memory`) and of
    `naive` (measured here, in the judge) on the puzzle-size `loss`, and where measured.

    Not measured (a skip) when the submission cannot run on fake tensors off a GPU.
    """
    on_gpu = device.type == "cuda"
    setup = lambda: puzzle_inputs(device if on_gpu else torch.device("cpu"), loss)  # noqa: E731
    naive_peak = cuda_peak(setup, naive) if on_gpu else fake_tensor_peak(setup, naive)
    if on_gpu:
        torch.cuda.empty_cache()  # the judge's cached blocks back to the device, for the box's measurement
    # Off a GPU, a raise is no fault: an operator without a fake implementation, a data-dependent branch, ...
    got = box_call(box, "D.memory", loss, doing="memory_efficient_linear at the puzzle's size",
                   refusal=None if on_gpu else "the submission could not run on fake tensors; measure it on a GPU",
                   deadline=watchdog.deadline(device.type, floor_s=MEMORY_FLOOR_S))
    peak = MemoryPeak(int(got["peak_bytes"]), int(got["retained_bytes"]), str(got["method"]))
    where = torch.cuda.get_device_name() if on_gpu else "fake-tensor estimate on CPU (kernel workspaces not counted)"
    return MemoryComparison(peak, naive_peak, PUZZLE_TEXT), where

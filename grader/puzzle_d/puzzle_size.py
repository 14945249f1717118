"""D's memory criteria at the puzzle's size: the inputs, the naive full-logit run, and both peaks measured.

On a GPU the peaks come from the CUDA allocator; elsewhere from fake tensors (`grader.measure.memory`),
so the full size is decided on a CPU without allocating it.
"""

from __future__ import annotations

from typing import Callable

import torch

from grader.measure.memory import cuda_peak, fake_tensor_peak
from grader.outcomes import not_measured
from grader.puzzle_d.oracles import ForwardFunction, cross_entropy, grpo
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


def measure(memory_efficient_linear: Callable[..., torch.Tensor], device: torch.device,
            loss: str) -> tuple[MemoryComparison, str]:
    """Peaks of the submission (its own chunk size) and of `naive` on the puzzle-size `loss`, and where measured.

    Not measured (a skip) when the submission cannot run on fake tensors off a GPU.
    """
    def candidate(state: Inputs) -> None:
        memory_efficient_linear(*state).backward()

    if device.type == "cuda":
        setup = lambda: puzzle_inputs(device, loss)  # noqa: E731
        return (MemoryComparison(cuda_peak(setup, candidate), cuda_peak(setup, naive), PUZZLE_TEXT),
                torch.cuda.get_device_name())
    setup = lambda: puzzle_inputs(torch.device("cpu"), loss)  # noqa: E731
    naive_peak = fake_tensor_peak(setup, naive)
    try:
        peak = fake_tensor_peak(setup, candidate)
    except Exception as exc:  # an operator without a fake implementation, a data-dependent branch, ...
        not_measured(f"the submission could not run on fake tensors ({type(exc).__name__}: {exc}); "
                     "measure it on a GPU")
    return MemoryComparison(peak, naive_peak, PUZZLE_TEXT), "fake-tensor estimate on CPU (kernel workspaces not counted)"

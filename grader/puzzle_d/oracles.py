"""Puzzle D oracles: the full-logit computations a candidate is judged by (`grader.puzzle_d.losses` holds the
losses themselves).

`full_logit` runs a forward function over all rows at once, the naive version, in the inputs' own
precision or in float64; `standard.py` judges a candidate against both. `exact_matmuls` sets the float32 matmul
precision those comparisons assume.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Iterator

import torch

from grader.puzzle_d.losses import CallLog, ForwardFunction


@contextlib.contextmanager
def exact_matmuls() -> Iterator[None]:
    """Full-precision float32 matmuls (no TF32) and float32 as the default dtype inside the block, the settings
    before it back after: the conditions D's tolerances assume, for the judge's computations and the box's alike."""
    precision = torch.get_float32_matmul_precision()
    cuda_tf32 = torch.backends.cuda.matmul.allow_tf32
    default_dtype = torch.get_default_dtype()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.backends.cuda.matmul.allow_tf32 = cuda_tf32
        torch.set_default_dtype(default_dtype)


@dataclass
class Result:
    """A loss value and the gradients of `upstream * loss` (None where none arrived); for a submission's result,
    what its forward function received (`log`)."""

    loss: torch.Tensor
    grads: dict[str, torch.Tensor | None]
    log: CallLog = field(default_factory=CallLog)


def gradients(x: torch.Tensor, linear: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """The gradients that arrived at X, the weight and (where there is one) the bias, by name."""
    grads = {"X": x.grad, "weight": linear.weight.grad}
    if linear.bias is not None:
        grads["bias"] = linear.bias.grad
    return grads


def full_logit(X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor, forward_function: ForwardFunction,
               upstream: float, *, dtype: torch.dtype | None = None, scale_after: bool = False,
               chunk_size: int | None = None) -> Result:
    """The naive version on copies of the inputs (cast to `dtype`): one autograd graph over all rows.

    `forward_function` runs on all rows at once, or with `chunk_size` on each chunk of rows, the chunk
    losses summed into the one graph (memory is no concern here). `scale_after` backpropagates 1 and
    multiplies the gradients by `upstream` afterwards (in float32).
    """
    lin = copy.deepcopy(linear)
    if dtype is not None:
        lin = lin.to(dtype)
    lin.zero_grad(set_to_none=True)
    x = X.detach().clone().to(dtype or X.dtype).requires_grad_(True)
    rows = x.reshape(-1, x.shape[-1])
    targets = labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])
    step = chunk_size or rows.shape[0]
    loss = sum(forward_function(rows[i:i + step], lin, targets[i:i + step]) for i in range(0, rows.shape[0], step))
    loss.backward(torch.tensor(1.0 if scale_after else upstream, dtype=loss.dtype, device=loss.device))
    grads = gradients(x, lin)
    if scale_after:
        grads = {k: None if g is None else (g.float() * upstream).to(g.dtype) for k, g in grads.items()}
    return Result(loss.detach(), grads)

"""Puzzle D's tasks: what runs in the submission's box (`grader.box.tasks`). Each returns raw results; the judge
(`standard.py` and the tests) decides what they mean.

- `D.run`: one call of `memory_efficient_linear` on copies of the inputs, backward with the upstream gradient:
  the loss, the gradients, what the forward function received, whether the result came from an autograd Function,
  and which earlier results (kept by name) the new ones share memory with;
- `D.memory`: the submission's peak memory at the puzzle's size (CUDA allocator on a GPU, fake tensors elsewhere);
- `D.llama`: a Llama trained through the submission (`grader.puzzle_d.training`).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from grader.box.tasks import Context, SubmissionFault, task
from grader.measure.memory import cuda_peak, fake_tensor_peak
from grader.puzzle_d import training
from grader.puzzle_d.losses import CallLog, Loss
from grader.puzzle_d.oracles import exact_matmuls, gradients
from grader.puzzle_d.puzzle_size import puzzle_inputs


def _storage(t: Any) -> int | None:
    return t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) and t.device.type != "meta" else None


@task("D.run")
def run(ctx: Context, X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor, forward_function: Any,
        chunk_size: int | None, upstream: float, *, keep: str | None = None) -> dict[str, Any]:
    """The submission on copies of the inputs, then backward with `upstream`."""
    fn = ctx.entry()
    log = CallLog()
    loss_fn = dataclasses.replace(forward_function, log=log) if isinstance(forward_function, Loss) else forward_function
    with exact_matmuls():
        lin = copy.deepcopy(linear)
        lin.zero_grad(set_to_none=True)
        x = X.detach().clone().requires_grad_(True)
        out = fn(x, lin, labels.clone(), loss_fn, chunk_size)
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            raise SubmissionFault(f"memory_efficient_linear must return a scalar tensor, got {type(out).__name__} "
                                  f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
        if not out.requires_grad:
            raise SubmissionFault("the result does not require grad: no gradient can reach X, weight or bias")
        autograd_function = isinstance(out.grad_fn, torch.autograd.function.BackwardCFunction)
        grad_fn = type(out.grad_fn).__name__
        out.backward(torch.tensor(upstream, dtype=out.dtype, device=out.device))
    grads = gradients(x, lin)
    results = {"loss": out, **grads}
    kept = {name: _storage(t) for name, t in ctx.kept.items()}
    shares = {name: sorted(k for k, ptr in kept.items() if ptr is not None and ptr == _storage(t))
              for name, t in results.items()}
    if keep is not None:
        ctx.kept.update({f"{keep}.{name}": t for name, t in results.items() if t is not None})
    return {"loss": out.detach().reshape(()), "grads": grads, "autograd_function": autograd_function,
            "grad_fn": grad_fn, "log": log, "shares_kept": shares}


@task("D.memory")
def memory(ctx: Context, loss: str) -> Any:
    """The submission's peak at the puzzle's size on `loss` ("ce" or "grpo"), forward + backward, its own chunk
    size: from the CUDA allocator on a GPU, from fake tensors elsewhere."""
    fn = ctx.entry()

    def candidate(state: Any) -> None:
        fn(*state).backward()

    with exact_matmuls():
        if ctx.device.type == "cuda":
            peak = cuda_peak(lambda: puzzle_inputs(ctx.device, loss), candidate)
        else:
            peak = fake_tensor_peak(lambda: puzzle_inputs(torch.device("cpu"), loss), candidate)
    return peak


@task("D.llama")
def llama(ctx: Context) -> Any:
    """The Llama of `grader.puzzle_d.training`, its LM head and loss through the submission."""
    with exact_matmuls():
        model = training.build(ctx.device)
        run = training.train(model, training.batches(model, ctx.device),
                             training.chunked_loss(ctx.entry(), training.CHUNK[ctx.device.type == "cuda"]))
    return run

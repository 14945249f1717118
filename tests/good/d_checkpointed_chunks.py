"""Good D built on activation checkpointing: forward runs every chunk's loss through
`torch.utils.checkpoint` (non-reentrant), so each chunk's graph keeps only its inputs, and the
`autograd.Function` holds that graph until backward, where one `torch.autograd.grad` call recomputes the
chunks one after another and returns the gradients of X, the weight and the bias."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


class CheckpointedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, weight, bias, linear, labels, forward_function, chunk_size):
        with torch.enable_grad():
            x = X.detach().requires_grad_(ctx.needs_input_grad[0])
            rows = x.reshape(-1, x.shape[-1])
            targets = labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])
            losses = [checkpoint(forward_function, r, linear, t, use_reentrant=False)
                      for r, t in zip(rows.split(chunk_size), targets.split(chunk_size))]
            total = torch.stack(losses).sum()
        ctx.x, ctx.params, ctx.total = x, (weight, bias), total
        return total.detach()

    @staticmethod
    def backward(ctx, grad_output):
        candidates = (ctx.x, *ctx.params)
        inputs = [t for t, want in zip(candidates, ctx.needs_input_grad) if want]
        grads = iter(torch.autograd.grad(ctx.total, inputs, grad_output, allow_unused=True) if inputs else ())
        ctx.x = ctx.params = ctx.total = None
        return (*(next(grads) if want else None for want in ctx.needs_input_grad[:3]), None, None, None, None)


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    """Sum of forward_function over chunks of chunk_size rows (2048 by default)."""
    return CheckpointedLoss.apply(X, linear.weight, linear.bias, linear, labels, forward_function, chunk_size or 2048)

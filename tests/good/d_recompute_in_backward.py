"""Good D, the textbook way: forward sums the chunk losses without building a graph and keeps only X; backward
recomputes one chunk at a time with grad enabled and asks `torch.autograd.grad` for that chunk's share of every
gradient, the upstream gradient passed as `grad_outputs`. Weight and bias gradients add up in float32."""

from __future__ import annotations

import torch


class ChunkedLinearLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, weight, bias, linear, labels, forward_function, chunk_size):
        x_rows = X.reshape(-1, X.shape[-1])
        y_rows = labels.reshape(x_rows.shape[0], *labels.shape[X.dim() - 1:])
        total = torch.zeros((), dtype=torch.float32, device=X.device)
        for x, y in zip(x_rows.split(chunk_size), y_rows.split(chunk_size)):
            total += forward_function(x, linear, y).float()
        ctx.save_for_backward(X)
        ctx.linear, ctx.labels, ctx.forward_function, ctx.chunk_size = linear, labels, forward_function, chunk_size
        return total

    @staticmethod
    def backward(ctx, grad_output):
        (X,) = ctx.saved_tensors
        linear = ctx.linear
        want_x, want_w, want_b = ctx.needs_input_grad[:3]
        params = [p for p, want in ((linear.weight, want_w), (linear.bias, want_b)) if want]
        x_rows = X.reshape(-1, X.shape[-1])
        y_rows = ctx.labels.reshape(x_rows.shape[0], *ctx.labels.shape[X.dim() - 1:])
        grad_x = torch.zeros_like(x_rows) if want_x else None
        sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
        start = 0
        for x, y in zip(x_rows.split(ctx.chunk_size), y_rows.split(ctx.chunk_size)):
            x = x.detach().requires_grad_(want_x)
            with torch.enable_grad():
                loss = ctx.forward_function(x, linear, y)
            inputs = ([x] if want_x else []) + params
            grads = list(torch.autograd.grad(loss, inputs, grad_output.to(loss.dtype), allow_unused=True))
            if want_x:
                gx = grads.pop(0)
                if gx is not None:
                    grad_x[start:start + len(x)] = gx
            for s, g in zip(sums, grads):
                if g is not None:
                    s += g
            start += len(x)
        param_grads = iter(s.to(p.dtype) for s, p in zip(sums, params))
        grad_w = next(param_grads) if want_w else None
        grad_b = next(param_grads) if want_b else None
        return None if grad_x is None else grad_x.reshape(X.shape), grad_w, grad_b, None, None, None, None


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    """Sum of forward_function over chunks of chunk_size rows (4096 by default)."""
    return ChunkedLinearLoss.apply(X, linear.weight, linear.bias, linear, labels, forward_function, chunk_size or 4096)

"""A plain chunked memory_efficient_linear (recompute each chunk in backward), with switches that plant one fault each."""

from __future__ import annotations

import torch


def make(*, average: bool = False, one_piece: bool = False, autocast_bf16: bool = False, param_grads: bool = True,
         use_upstream: bool = True, drop_remainder: bool = False):
    """The entry point, correct with every switch at its default."""

    def spans(n: int, chunk: int) -> list[tuple[int, int]]:
        if one_piece:
            return [(0, n)]
        stop = n - n % chunk if drop_remainder and n >= chunk else n
        return [(i, min(i + chunk, n)) for i in range(0, stop, chunk)]

    def run(forward_function, x, linear, y):
        if autocast_bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return forward_function(x, linear, y)
        return forward_function(x, linear, y)

    def flat(X, labels):
        rows = X.reshape(-1, X.shape[-1])
        return rows, labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])

    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, X, weight, bias, linear, labels, forward_function, chunk):
            rows, targets = flat(X, labels)
            parts = [run(forward_function, rows[a:b], linear, targets[a:b]) for a, b in spans(len(rows), chunk)]
            ctx.save_for_backward(X)
            ctx.rest = (linear, labels, forward_function, chunk, len(parts))
            total = torch.stack(parts).sum()
            return total / len(parts) if average else total

        @staticmethod
        def backward(ctx, g):
            (X,) = ctx.saved_tensors
            linear, labels, forward_function, chunk, n_parts = ctx.rest
            rows, targets = flat(X, labels)
            params = [p for p in (linear.weight, linear.bias) if p is not None] if param_grads else []
            dX = torch.zeros_like(rows)
            dparams = [torch.zeros_like(p) for p in params]
            upstream = (g / n_parts if average else g) if use_upstream else None
            for a, b in spans(len(rows), chunk):
                with torch.enable_grad():
                    x = rows[a:b].detach().requires_grad_(True)
                    loss = run(forward_function, x, linear, targets[a:b])
                grads = torch.autograd.grad(loss, [x, *params], upstream, allow_unused=True)
                dX[a:b] = grads[0]
                for acc, grad in zip(dparams, grads[1:]):
                    if grad is not None:
                        acc += grad
            dW = dparams[0] if param_grads else None
            db = dparams[1] if param_grads and linear.bias is not None else None
            return dX.reshape(X.shape), dW, db, None, None, None, None

    def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
        rows = X.reshape(-1, X.shape[-1]).shape[0]
        return Chunked.apply(X, linear.weight, linear.bias, linear, labels, forward_function,
                             chunk_size or min(1024, rows))

    return memory_efficient_linear

"""A correct, not memory-efficient `memory_efficient_linear` (full logits, recomputed in backward): the honest
puzzle-D half of the `x_*` files whose fault is in puzzle A, so that D can be seen graded beside it."""

import torch


class _FullLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, weight, bias, linear, labels, forward_function):
        ctx.save_for_backward(X)
        ctx.rest = (linear, labels, forward_function)
        with torch.no_grad():
            return _loss(X, linear, labels, forward_function)

    @staticmethod
    def backward(ctx, upstream):
        (X,) = ctx.saved_tensors
        linear, labels, forward_function = ctx.rest
        params = [p for p in (linear.weight, linear.bias) if p is not None]
        with torch.enable_grad():
            x = X.detach().requires_grad_(True)
            grads = torch.autograd.grad(_loss(x, linear, labels, forward_function), [x, *params], upstream)
        return grads[0], grads[1], grads[2] if linear.bias is not None else None, None, None, None


def _loss(X, linear, labels, forward_function):
    rows = X.reshape(-1, X.shape[-1])
    return forward_function(rows, linear, labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:]))


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    """The full-logit loss, through one autograd.Function."""
    return _FullLogits.apply(X, linear.weight, linear.bias, linear, labels, forward_function)

"""Good D in Liger-Kernel's fused-linear-cross-entropy style: the gradients are formed during the forward pass.
Per chunk, grad is enabled, the chunk's loss comes from `forward_function`, and `torch.autograd.grad` takes it to
the chunk's rows, the weight and the bias at once; the gradients are accumulated (in the parameters' dtype, as
Liger does) and the chunk's graph dropped. Backward only scales the stored gradients by the upstream gradient,
always (Liger skips the multiply when the upstream gradient is 1, a data-dependent branch).

Scaling afterwards is exact to one rounding when the gradients have float32's exponent range (float32,
bfloat16). Float16 gradients formed before the scale arrives underflow (what a GradScaler loss scale is there
to prevent), so float16 inputs run the same per-chunk `torch.autograd.grad` in backward instead, with the
upstream gradient as `grad_outputs`."""

from __future__ import annotations

import torch


def _chunks(X, labels, chunk_size):
    """(first row, X rows, label rows) of each chunk of the flattened rows."""
    x_rows = X.reshape(-1, X.shape[-1])
    y_rows = labels.reshape(x_rows.shape[0], *labels.shape[X.dim() - 1:])
    for start in range(0, x_rows.shape[0], chunk_size):
        yield start, x_rows[start:start + chunk_size], y_rows[start:start + chunk_size]


def _chunk_grads(X, weight, bias, linear, labels, forward_function, chunk_size, grad_output=None):
    """The loss summed over chunks, and the gradients of grad_output * that sum (None: 1) for X, weight, bias."""
    wrt = [t for t in (weight, bias) if t is not None and t.requires_grad]
    grad_input = torch.zeros(X.reshape(-1, X.shape[-1]).shape, dtype=X.dtype, device=X.device)
    grad_params = [torch.zeros_like(t) for t in wrt]
    loss_sum = torch.zeros((), dtype=torch.float32, device=X.device)
    for start, x, y in _chunks(X, labels, chunk_size):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = forward_function(x, linear, y)
            grads = torch.autograd.grad(loss, [x, *wrt], grad_output, allow_unused=True)
        if grads[0] is not None:
            grad_input[start:start + len(x)] = grads[0]
        for acc, g in zip(grad_params, grads[1:]):
            if g is not None:
                acc.add_(g)
        loss_sum += loss.detach().float()
    by_param = dict(zip(map(id, wrt), grad_params))
    grads = (grad_input.reshape(X.shape), by_param.get(id(weight)), None if bias is None else by_param.get(id(bias)))
    return loss_sum, grads


class FusedLinearLoss(torch.autograd.Function):
    """Gradients formed in forward, scaled by the upstream gradient in backward."""

    @staticmethod
    def forward(ctx, X, weight, bias, linear, labels, forward_function, chunk_size):
        loss_sum, ctx.grads = _chunk_grads(X, weight, bias, linear, labels, forward_function, chunk_size)
        return loss_sum

    @staticmethod
    def backward(ctx, grad_output):
        grads, ctx.grads = ctx.grads, None
        return (*(None if g is None else g * grad_output for g in grads), None, None, None, None)


class BackwardFormedLinearLoss(torch.autograd.Function):
    """Float16: the loss in forward, the same per-chunk gradients in backward with the upstream gradient in them."""

    @staticmethod
    def forward(ctx, X, weight, bias, linear, labels, forward_function, chunk_size):
        ctx.args = (X, weight, bias, linear, labels, forward_function, chunk_size)
        return sum(forward_function(x, linear, y).float() for _, x, y in _chunks(X, labels, chunk_size))

    @staticmethod
    def backward(ctx, grad_output):
        _, grads = _chunk_grads(*ctx.args, grad_output=grad_output)
        ctx.args = None
        return (*grads, None, None, None, None)


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    """Sum of forward_function over chunks of chunk_size rows (1024 by default)."""
    function = BackwardFormedLinearLoss if X.dtype == torch.float16 else FusedLinearLoss
    return function.apply(X, linear.weight, linear.bias, linear, labels, forward_function, chunk_size or 1024)

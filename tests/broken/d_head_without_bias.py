"""Broken D: the chunks reach `forward_function` through a small weight-only head, so autograd can differentiate the
loss handed in with respect to a detached copy of the weight; the head leaves out the bias. Its one fault: the
bias is dropped (the logits lack it and the bias gets no gradient). Every gradient still comes from
`torch.autograd.grad` on the loss it is given."""

from __future__ import annotations

import torch


class _WeightOnlyHead(torch.nn.Module):
    """`x @ weight.T` over a weight leaf of its own."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()


class _HeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, weight, labels, forward_function, rows_per_chunk):
        flat_x = X.reshape(-1, X.shape[-1])
        flat_y = labels.reshape(flat_x.shape[0], *labels.shape[X.dim() - 1:])
        leaf_w = weight.detach().requires_grad_(True)
        head = _WeightOnlyHead(leaf_w)
        dX = torch.empty_like(flat_x)
        dW = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        value = torch.zeros((), dtype=torch.float32, device=X.device)
        begin = 0
        while begin < flat_x.shape[0]:
            end = min(begin + rows_per_chunk, flat_x.shape[0])
            x = flat_x[begin:end].detach().requires_grad_(True)
            with torch.enable_grad():
                part = forward_function(x, head, flat_y[begin:end])
                gx, gw = torch.autograd.grad(part, (x, leaf_w))
            dX[begin:end] = gx
            dW += gw.float()
            value += part.detach().float()
            begin = end
        ctx.save_for_backward(dX.reshape(X.shape), dW.to(weight.dtype))
        return value

    @staticmethod
    def backward(ctx, upstream):
        dX, dW = ctx.saved_tensors
        return dX * upstream, dW * upstream, None, None, None


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    return _HeadLoss.apply(X, linear.weight, labels, forward_function, chunk_size or 2048)

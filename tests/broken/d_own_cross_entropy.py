"""Broken D: never calls `forward_function`; each chunk's loss is a cross-entropy the submission computes itself
(mean over the non-ignored tokens), recomputed in backward and differentiated by autograd. Its one fault: the loss
handed in is ignored, so any loss other than cross-entropy gets cross-entropy's value and gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _chunk_ce(x, weight, bias, y, n_valid):
    logits = F.linear(x, weight, bias).float()
    return F.cross_entropy(logits, y, ignore_index=-100, reduction="sum") / n_valid


class _OwnCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, weight, bias, labels, step):
        rows = X.reshape(-1, X.shape[-1])
        tokens = labels.reshape(-1)
        n_valid = max(int((tokens != -100).sum()), 1)
        spans = [(a, min(a + step, len(rows))) for a in range(0, len(rows), step)]
        ctx.save_for_backward(X, weight, bias, labels)
        ctx.spans, ctx.n_valid = spans, n_valid
        return sum((_chunk_ce(rows[a:b], weight, bias, tokens[a:b], n_valid) for a, b in spans),
                   torch.zeros((), device=X.device))

    @staticmethod
    def backward(ctx, upstream):
        X, weight, bias, labels = ctx.saved_tensors
        rows, tokens = X.reshape(-1, X.shape[-1]), labels.reshape(-1)
        w = weight.detach().requires_grad_(True)
        b = None if bias is None else bias.detach().requires_grad_(True)
        leaves = [t for t in (w, b) if t is not None]
        grad_rows = torch.zeros_like(rows)
        sums = [torch.zeros_like(t, dtype=torch.float32) for t in leaves]
        for a, z in ctx.spans:
            with torch.enable_grad():
                x = rows[a:z].detach().requires_grad_(True)
                loss = _chunk_ce(x, w, b, tokens[a:z], ctx.n_valid)
                got = torch.autograd.grad(loss, [x, *leaves], upstream)
            grad_rows[a:z] = got[0]
            for acc, g in zip(sums, got[1:]):
                acc += g.float()
        grad_w = sums[0].to(weight.dtype)
        grad_b = None if bias is None else sums[1].to(bias.dtype)
        return grad_rows.reshape(X.shape), grad_w, grad_b, None, None


def memory_efficient_linear(X, linear, labels, forward_function, chunk_size=None):
    return _OwnCE.apply(X, linear.weight, linear.bias, labels, chunk_size or 1024)

"""Puzzle D (the notebook's E): a linear layer followed by a loss, without the full logits.

`memory_efficient_linear(X, linear, labels, forward_function, chunk_size)` returns
`sum(forward_function(x_chunk, linear, labels_chunk))` over chunks of `chunk_size` rows of X. Only one
chunk's logits exist at a time, and every gradient comes from autograd differentiating
`forward_function` itself, so any loss works: cross-entropy and its variants, MSE, KL, GRPO, ...

How the gradients are formed:
- Each chunk runs `forward_function` with grad enabled and `torch.autograd.grad` takes it back to the
  chunk's rows, right after the forward, so the big matmul is not recomputed in backward. The upstream
  gradient of the scalar result only scales these gradients, so backward multiplies them by it. In
  float16 that would let small gradients underflow before the scale (a GradScaler's loss scale) arrives,
  so float16 inputs instead recompute each chunk in backward with the upstream gradient.
- `forward_function` is handed a stand-in for `linear` whose call is `_LinearTap`: it computes the same
  `F.linear`, and in backward passes `dY @ W` on to its input and keeps `(dY, input)` for the weight.
  Those pairs are gathered until a few hundred MiB of rows are pending and then folded into the weight
  and bias gradients with one `addmm` each, so the weight gradient is rounded to its dtype once per
  group rather than once per chunk, and no per-chunk vocab x hidden temporary is ever allocated.
- Anything `forward_function` does with `linear.weight` or `linear.bias` directly (a tied-weight
  penalty, say) reaches them through the real parameters and is added by autograd as usual.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# Rows per chunk: float32 logits of at most this many bytes (512 rows at vocab 128256). On an H100 at the puzzle
# size (bsz 4, qlen 4096, hd 4096, vocab 128256, bf16, fwd+bwd; BENCHMARKS.md) smaller chunks cost time (256
# rows: +6 to +8 ms) and larger ones memory (1024 rows with the same groups: +0.73 GiB for -4.6 ms).
_LOGITS_BUDGET_BYTES = 256 * 2**20
# Rows per weight-gradient update: pending output gradients of at most this many bytes (2093 rows). Each update
# reads and writes the whole weight gradient, so fewer, larger updates are faster and round dW fewer times.
# Same H100 run, 512-row chunks: 256 MiB -> 2.10 GiB peak, 117.1 ms; 512 MiB -> 2.36 GiB, 115.6 ms;
# 1 GiB -> 2.87 GiB, 113.8 ms (naive: 23.52 GiB, 105.0 ms). 512 MiB is the fastest within 2.5 GiB.
_GROUP_BUDGET_BYTES = 512 * 2**20

ForwardFunction = Callable[[torch.Tensor, torch.nn.Module, torch.Tensor], torch.Tensor]


def _auto_chunk_size(vocab: int) -> int:
    """Rows whose float32 logits fit the budget, rounded down to a power of two."""
    rows = max(1, _LOGITS_BUDGET_BYTES // (4 * vocab))
    return 1 << (rows.bit_length() - 1)


class _WeightGradAccumulator:
    """Collects `(dY, input)` row pairs and folds them into dW (weight dtype) and db (float32) in groups."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, want_weight: bool, want_bias: bool):
        vocab = weight.shape[0]
        self.dW = torch.zeros_like(weight) if want_weight else None
        self.db = torch.zeros(vocab, dtype=torch.float32, device=weight.device) if want_bias else None
        self.bias_dtype = None if bias is None else bias.dtype
        self.group_rows = max(1, _GROUP_BUDGET_BYTES // (vocab * weight.element_size()))
        self._dy: torch.Tensor | None = None
        self._inp: torch.Tensor | None = None
        self._filled = 0

    def add(self, dy: torch.Tensor, inp: torch.Tensor) -> None:
        """Account for one linear call's output gradient `dy` (rows, vocab) and input `inp` (rows, hidden)."""
        if self.db is not None:
            self.db += dy.sum(0, dtype=torch.float32)
        if self.dW is None:
            return
        rows = dy.shape[0]
        if self._filled + rows > self.group_rows:
            self.flush()
        if rows >= self.group_rows:
            self.dW.addmm_(dy.t(), inp)
            return
        if self._dy is None:
            self._dy = dy.new_empty(self.group_rows, dy.shape[1])
            self._inp = inp.new_empty(self.group_rows, inp.shape[1])
        self._dy[self._filled:self._filled + rows] = dy
        self._inp[self._filled:self._filled + rows] = inp
        self._filled += rows

    def flush(self) -> None:
        """Fold the pending rows into dW with one matmul."""
        if self._filled:
            n, self._filled = self._filled, 0
            self.dW.addmm_(self._dy[:n].t(), self._inp[:n])

    def finish(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The weight and bias gradients (bias in its own dtype); drops the group buffers."""
        self.flush()
        self._dy = self._inp = None
        db = None if self.db is None else self.db.to(self.bias_dtype)
        return self.dW, db


class _LinearTap(torch.autograd.Function):
    """`F.linear(inp, weight, bias)` whose backward hands (dY, inp) to the accumulator for dW and db."""

    @staticmethod
    def forward(ctx, inp: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                acc: _WeightGradAccumulator) -> torch.Tensor:
        ctx.save_for_backward(inp)
        ctx.weight, ctx.acc = weight, acc
        return F.linear(inp, weight, bias)

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (inp,) = ctx.saved_tensors
        ctx.acc.add(dy.reshape(-1, dy.shape[-1]), inp.reshape(-1, inp.shape[-1]))
        d_inp = dy @ ctx.weight if ctx.needs_input_grad[0] else None
        return d_inp, None, None, None


class _TappedLinear(torch.nn.Module):
    """Stands in for an `nn.Linear` inside `forward_function`: same call, same attributes."""

    def __init__(self, linear: torch.nn.Linear, acc: _WeightGradAccumulator):
        super().__init__()
        self.source = linear
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._acc = acc

    @property
    def weight(self) -> torch.Tensor:
        return self.source.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.source.bias

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        bias = None if self.source.bias is None else self.source.bias.detach()
        return _LinearTap.apply(inp, self.source.weight.detach(), bias, self._acc)


def _tappable(linear: torch.nn.Module) -> bool:
    """Only a plain `nn.Linear` without hooks may be replaced by the tap; anything else is called as is."""
    return type(linear) is torch.nn.Linear and not (linear._forward_hooks or linear._forward_pre_hooks)


def _chunk_losses(X: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, linear: torch.nn.Module,
                  labels: torch.Tensor, forward_function: ForwardFunction, chunk_size: int,
                  want: tuple[bool, bool, bool], upstream: torch.Tensor | None
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """Sum of `forward_function` over row chunks, and the gradients of `upstream * sum` w.r.t. X, weight, bias.

    Gradients are formed only for the inputs flagged in `want`; with none flagged this is a plain chunked
    forward. `upstream` None means 1.
    """
    want_x, want_w, want_b = want
    rows = X.reshape(-1, X.shape[-1])
    targets = labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])
    acc = _WeightGradAccumulator(weight, bias, want_w, want_b)
    module = _TappedLinear(linear, acc) if _tappable(linear) else linear
    direct = [(is_weight, p) for is_weight, p, w in ((True, weight, want_w), (False, bias, want_b)) if w]
    dX = torch.empty_like(rows) if want_x else None
    total = None
    for start in range(0, rows.shape[0], chunk_size):
        end = min(start + chunk_size, rows.shape[0])
        x = rows[start:end].detach().requires_grad_(want_x)
        with torch.set_grad_enabled(any(want)):
            loss = forward_function(x, module, targets[start:end])
        total = loss.detach().double() if total is None else total + loss.detach().double()
        if not loss.requires_grad:  # no gradients wanted, or this chunk does not depend on them
            if dX is not None:
                dX[start:end] = 0
            continue
        wrt = ([x] if want_x else []) + [p for _, p in direct]
        grads = list(torch.autograd.grad(loss, wrt, upstream, allow_unused=True))
        if want_x:
            gx = grads.pop(0)
            dX[start:end] = 0 if gx is None else gx
        for (is_weight, _), g in zip(direct, grads):
            if g is None:
                continue  # the usual case: the parameter was only reached through the tapped linear
            if is_weight:
                acc.dW += g
            else:
                acc.db += g.float()
    if total is None:
        raise ValueError("memory_efficient_linear: X has no rows")
    return total.to(loss.dtype), (dX, *acc.finish())


class _MemoryEfficientLinear(torch.autograd.Function):
    """Chunked `forward_function` sum. Gradients are formed in forward and scaled in backward, except in float16.

    Scaling afterwards is exact to one rounding when the gradients have float32's exponent range (float32,
    bfloat16). Float16 gradients underflow unless the upstream gradient (a GradScaler loss scale, say) is in
    them before they are rounded, so float16 recomputes each chunk in backward with it.
    """

    @staticmethod
    def forward(ctx, X: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                linear: torch.nn.Module, labels: torch.Tensor, forward_function: ForwardFunction,
                chunk_size: int) -> torch.Tensor:
        want = tuple(ctx.needs_input_grad[:3])
        ctx.deferred = any(want) and torch.float16 in (X.dtype, weight.dtype)
        args = (X, weight, bias, linear, labels, forward_function, chunk_size)
        loss, grads = _chunk_losses(*args, want=(False,) * 3 if ctx.deferred else want, upstream=None)
        if ctx.deferred:
            ctx.args, ctx.want = args, want
        else:
            ctx.grads = grads
        ctx.x_shape = X.shape
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.deferred:
            _, (dX, dW, db) = _chunk_losses(*ctx.args, want=ctx.want, upstream=grad_output)
            ctx.args = None
        else:
            (dX, dW, db), ctx.grads = ctx.grads, None  # hand the buffers over: autograd adopts them, no copy
            scale = grad_output.to(torch.float32)
            dX, dW, db = (None if g is None else g.mul_(scale) for g in (dX, dW, db))
        if dX is not None:
            dX = dX.reshape(ctx.x_shape)
        return dX, dW, db, None, None, None, None


def memory_efficient_linear(X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor,
                            forward_function: ForwardFunction, chunk_size: int | None = None) -> torch.Tensor:
    """Sum over row chunks of `forward_function(x_chunk, linear, labels_chunk)`, never forming all logits.

    X is (..., hidden); labels share X's leading dimensions (token ids, or per-row targets of any width);
    `forward_function` returns a scalar per chunk. `chunk_size` rows per chunk; None picks one from the
    vocabulary size. Losses that need a global normaliser (mean over valid tokens) close over it.
    """
    if chunk_size is None:
        chunk_size = _auto_chunk_size(linear.out_features)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return _MemoryEfficientLinear.apply(X, linear.weight, linear.bias, linear, labels, forward_function, chunk_size)

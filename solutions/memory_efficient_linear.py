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

The fused path (large problems on a GPU): the loss's own elementwise work is what makes an unfused chunked loss
slower than the fused cross-entropy kernels (float32 logits written and read by each of its operations). So the
reference computes each chunk's logits itself and hands `forward_function` a stand-in whose call returns them;
`torch.compile` traces `forward_function` through that stand-in, and Inductor fuses the loss and its autograd
backward into a few passes over the 16-bit logits. Autograd still derives the gradient (AOTAutograd), the
callable stays opaque, and the stand-in checks that it was called exactly once, on the chunk it was given: a
loss that calls the layer otherwise (twice, or on another input) falls back to the tapped eager path.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import torch
import torch.nn.functional as F

# Rows per chunk on the eager path: float32 logits of at most this many bytes (512 rows at vocab 128256). On an H100
# at the puzzle size (bsz 4, qlen 4096, hd 4096, vocab 128256, bf16, fwd+bwd; BENCHMARKS.md) smaller chunks cost
# time (256 rows: +6 to +8 ms) and larger ones memory (1024 rows with the same groups: +0.73 GiB for -4.6 ms).
# (H200, call D2: the eager path at these settings 2.35 GiB, 108.4 ms for cross-entropy.)
_LOGITS_BUDGET_BYTES = 256 * 2**20
# Rows per weight-gradient update: pending output gradients of at most this many bytes (2093 rows). Each update
# reads and writes the whole weight gradient, so fewer, larger updates are faster and round dW fewer times.
# Same H100 run, 512-row chunks: 256 MiB -> 2.10 GiB peak, 117.1 ms; 512 MiB -> 2.36 GiB, 115.6 ms;
# 1 GiB -> 2.87 GiB, 113.8 ms (naive: 23.52 GiB, 105.0 ms). 512 MiB is the fastest within 2.5 GiB.
_GROUP_BUDGET_BYTES = 512 * 2**20
# Fused path, rows per chunk: the chunk's logits and their gradient (in the inputs' dtype) and one float32 temporary
# of the same shape within this many bytes, and within a quarter of the device's free memory (1024 rows at vocab
# 128256, bf16). Inductor keeps cross-entropy's float32 work in registers, but not every loss's: GRPO's gather
# backs into a float32 scatter buffer. Each chunk's gradient is one weight-gradient update (no group buffers).
# H200 at the puzzle size (BENCHMARKS.md, call D2; peak above the inputs, median fwd+bwd): 256 MiB (256 rows):
# cross-entropy 1.23 GiB, 117.4 ms; 512 MiB: 1.35 GiB, 96.0 ms; 1 GiB: 1.60 GiB, 87.1 ms, GRPO 2.08 GiB, 90.0 ms;
# 2 GiB: 2.10 GiB, 83.6 ms, GRPO 3.06 GiB, 86.8 ms. Liger-Kernel's fused CE in that run: 1.23 GiB, 90.3 ms. 1 GiB is
# the fastest budget that keeps every loss within 2.5 GiB.
_FUSED_BUDGET_BYTES = 1 * 2**30
# The fused path is taken from this many logits on (rows x vocab): below it the loss's passes over float32 logits
# cost less than a millisecond on a GPU (2**26 elements x ~10 passes x 4 bytes at ~4 TB/s), less than what the
# first compilation of a new loss costs (3.6-5.1 s on the H200, call D2).
_FUSE_MIN_LOGITS = 2**26
# Devices where the fused path runs: it is a GPU optimisation; on a CPU the eager path is the one measured.
_FUSED_DEVICES = frozenset({"cuda"})

ForwardFunction = Callable[[torch.Tensor, torch.nn.Module, torch.Tensor], torch.Tensor]


def _group_rows(weight: torch.Tensor) -> int:
    """Rows of output gradients whose bytes fit the group budget."""
    return max(1, _GROUP_BUDGET_BYTES // (weight.shape[0] * weight.element_size()))


def _auto_chunk_size(vocab: int) -> int:
    """Eager path: rows whose float32 logits fit the budget, rounded down to a power of two."""
    rows = max(1, _LOGITS_BUDGET_BYTES // (4 * vocab))
    return 1 << (rows.bit_length() - 1)


def _fused_chunk_size(weight: torch.Tensor) -> int:
    """Fused path: rows whose logits, logit gradient and a float32 temporary fit the budget and a quarter of the free
    memory, rounded down to a multiple of 256 (the matmuls' tile) when there is room for one."""
    budget = _FUSED_BUDGET_BYTES
    if weight.is_cuda:
        budget = min(budget, torch.cuda.mem_get_info(weight.device)[0] // 4)
    rows = max(1, budget // (weight.shape[0] * (2 * weight.element_size() + 4)))
    return rows // 256 * 256 or rows


class _WeightGradAccumulator:
    """Collects `(dY, input)` row pairs and folds them into dW (weight dtype) and db (float32) in groups."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, want_weight: bool, want_bias: bool,
                 group_rows: int):
        self.dW = torch.zeros_like(weight) if want_weight else None
        self.db = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if want_bias else None
        self.bias_dtype = None if bias is None else bias.dtype
        self.group_rows = group_rows
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


class _GivenLogits:
    """Stands in for the linear layer inside the compiled loss: its call returns the chunk's precomputed logits and
    notes whether it was called exactly once, on the chunk's rows; `weight` and `bias` are the real parameters."""

    def __init__(self, logits: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        self.logits, self.x, self.weight, self.bias = logits, x, weight, bias
        self.out_features, self.in_features = weight.shape
        self.calls = 0
        self.on_chunk = True

    def __call__(self, inp: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.on_chunk = self.on_chunk and inp is self.x
        return self.logits


def _loss_of_logits(logits: torch.Tensor, x: torch.Tensor, targets: torch.Tensor, forward_function: ForwardFunction,
                    weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
    """`forward_function` on a chunk whose logits are given; True when it called the layer once, on `x`."""
    layer = _GivenLogits(logits, x, weight, bias)
    loss = forward_function(x, layer, targets)
    return loss, layer.calls == 1 and layer.on_chunk


@functools.cache
def _compiled_loss_of_logits() -> Callable[..., tuple[torch.Tensor, bool]]:
    """`_loss_of_logits` under `torch.compile`, made on the fused path's first use (importing dynamo costs ~1 s)."""
    return torch.compile(_loss_of_logits)


def _tappable(linear: torch.nn.Module) -> bool:
    """Only a plain `nn.Linear` without hooks may be replaced by the tap; anything else is called as is."""
    return type(linear) is torch.nn.Linear and not (linear._forward_hooks or linear._forward_pre_hooks)


def _fusable(rows: torch.Tensor, linear: torch.nn.Module) -> bool:
    """Whether the fused path applies: a plain linear layer, a large problem on a fused device, not already being
    traced by an outer `torch.compile`."""
    return (rows.device.type in _FUSED_DEVICES and _tappable(linear) and not torch.compiler.is_compiling()
            and rows.shape[0] * linear.out_features >= _FUSE_MIN_LOGITS)


class _Chunks:
    """The running sums of one pass over the chunks: the loss, and the gradients of `upstream * loss` for the inputs
    flagged in `want` (X's rows, weight, bias); `upstream` None means 1."""

    def __init__(self, rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 forward_function: ForwardFunction, want: tuple[bool, bool, bool], upstream: torch.Tensor | None,
                 group_rows: int):
        self.weight, self.bias, self.forward_function, self.want, self.upstream = (
            weight, bias, forward_function, want, upstream)
        self.acc = _WeightGradAccumulator(weight, bias, want[1], want[2], group_rows)
        self.direct = [(is_weight, p) for is_weight, p, w in ((True, weight, want[1]), (False, bias, want[2])) if w]
        self.dX = torch.empty_like(rows) if want[0] else None
        self.total: torch.Tensor | None = None
        self.dtype: torch.dtype | None = None

    def eager(self, module: torch.nn.Module, x_rows: torch.Tensor, targets: torch.Tensor, at: slice) -> None:
        """One chunk through `forward_function` and autograd, the layer tapped (or called as is)."""
        x = x_rows.detach().requires_grad_(self.want[0])
        with torch.set_grad_enabled(any(self.want)):
            loss = self.forward_function(x, module, targets)
        self._take(loss, x, None, at)

    def fused(self, x_rows: torch.Tensor, targets: torch.Tensor, at: slice) -> bool:
        """One chunk through the compiled loss on logits computed here; False (nothing taken) when `forward_function`
        did not call the layer exactly once on the chunk, or the compiled loss failed."""
        bias = None if self.bias is None else self.bias.detach()
        with torch.no_grad():
            logits = F.linear(x_rows, self.weight.detach(), bias)
        grad_wanted = any(self.want)
        logits.requires_grad_(grad_wanted)
        x = x_rows.detach().requires_grad_(self.want[0])
        try:
            with torch.set_grad_enabled(grad_wanted):
                loss, called_once = _compiled_loss_of_logits()(logits, x, targets, self.forward_function,
                                                               self.weight, self.bias)
        except Exception as exc:  # compiling is an optimisation: the eager path runs the loss (and raises its errors)
            warnings.warn(f"memory_efficient_linear: the fused loss failed ({type(exc).__name__}: {exc}); "
                          "running the eager path", RuntimeWarning, stacklevel=2)
            return False
        if not called_once:
            return False
        self._take(loss, x, logits, at)
        return True

    def _take(self, loss: torch.Tensor, x: torch.Tensor, logits: torch.Tensor | None, at: slice) -> None:
        """Add one chunk's loss, and its gradients (through `logits` when the chunk's logits were given)."""
        self.total = loss.detach().double() if self.total is None else self.total + loss.detach().double()
        self.dtype = loss.dtype
        if not loss.requires_grad:  # no gradients wanted, or this chunk does not depend on them
            if self.dX is not None:
                self.dX[at] = 0
            return
        given = [] if logits is None else [logits]
        wrt = given + ([x] if self.want[0] else []) + [p for _, p in self.direct]
        grads = list(torch.autograd.grad(loss, wrt, self.upstream, allow_unused=True))
        d_logits = grads.pop(0) if given else None
        gx = grads.pop(0) if self.want[0] else None
        if d_logits is not None:
            self.acc.add(d_logits, x)
            if self.dX is not None:
                gx = d_logits @ self.weight.detach() if gx is None else gx + d_logits @ self.weight.detach()
        if self.dX is not None:
            self.dX[at] = 0 if gx is None else gx
        for (is_weight, _), g in zip(self.direct, grads):
            if g is None:
                continue  # the usual case: the parameter was only reached through the tapped linear
            if is_weight:
                self.acc.dW += g
            else:
                self.acc.db += g.float()

    def result(self) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
        """The loss in the dtype `forward_function` returned, and the gradients (dX rows, dW, db)."""
        if self.total is None:
            raise ValueError("memory_efficient_linear: X has no rows")
        return self.total.to(self.dtype), (self.dX, *self.acc.finish())


def _chunk_losses(X: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, linear: torch.nn.Module,
                  labels: torch.Tensor, forward_function: ForwardFunction, chunk_size: int | None,
                  want: tuple[bool, bool, bool], upstream: torch.Tensor | None
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """Sum of `forward_function` over row chunks, and the gradients of `upstream * sum` w.r.t. X, weight, bias.

    Gradients are formed only for the inputs flagged in `want`; with none flagged this is a plain chunked
    forward. `upstream` None means 1. `chunk_size` None picks the rows per chunk from the path taken.
    """
    rows = X.reshape(-1, X.shape[-1])
    targets = labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])
    fused = _fusable(rows, linear)
    fused_rows = chunk_size or (_fused_chunk_size(weight) if fused else 0)
    eager_rows = chunk_size or _auto_chunk_size(linear.out_features)
    # an automatic fused chunk is a group of its own; otherwise the chunks' gradients are grouped
    group_rows = fused_rows if fused and chunk_size is None else _group_rows(weight)
    run = _Chunks(rows, weight, bias, forward_function, want, upstream, group_rows)
    module = _TappedLinear(linear, run.acc) if _tappable(linear) else linear
    start = 0
    while start < rows.shape[0]:
        at = slice(start, min(start + (fused_rows if fused else eager_rows), rows.shape[0]))
        if fused and not run.fused(rows[at], targets[at], at):
            fused = False  # the loss calls the layer otherwise: the tapped eager path, from this chunk on
            continue
        if not fused:
            run.eager(module, rows[at], targets[at], at)
        start = at.stop
    return run.result()


class _MemoryEfficientLinear(torch.autograd.Function):
    """Chunked `forward_function` sum. Gradients are formed in forward and scaled in backward, except in float16.

    Scaling afterwards is exact to one rounding when the gradients have float32's exponent range (float32,
    bfloat16). Float16 gradients underflow unless the upstream gradient (a GradScaler loss scale, say) is in
    them before they are rounded, so float16 recomputes each chunk in backward with it.
    """

    @staticmethod
    def forward(ctx, X: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                linear: torch.nn.Module, labels: torch.Tensor, forward_function: ForwardFunction,
                chunk_size: int | None) -> torch.Tensor:
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
    vocabulary size (and on the fused path from the device's free memory). Losses that need a global normaliser (mean over valid tokens) close over it.
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return _MemoryEfficientLinear.apply(X, linear.weight, linear.bias, linear, labels, forward_function, chunk_size)

"""Puzzle D oracles: the grader's forward functions (losses) and the full-logit computations they are judged by.

A forward function has the submission's signature `forward_function(x_chunk, linear, labels_chunk) -> scalar`
and sums over the chunk's rows; a loss that needs a global normaliser closes over it, so the sum over
chunks equals the loss over all rows. Every builder upcasts the logits to at least float32 before the
loss (float64 stays float64, so the same builder yields the float64 truth).

`full_logit` runs a forward function over all rows at once, the naive version, in the inputs' own
precision or in float64; `standard.py` judges a candidate against both.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

ForwardFunction = Callable[[torch.Tensor, torch.nn.Module, torch.Tensor], torch.Tensor]


def upcast(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32, or float64 if it already is: the loss never sees fewer than 32 bits."""
    return t if t.dtype == torch.float64 else t.float()


@dataclass
class CallLog:
    """What a forward function received: rows per call and the dtypes of the logits on their way to the loss."""

    rows: list[int] = field(default_factory=list)
    linear_out_dtypes: list[torch.dtype] = field(default_factory=list)
    loss_in_dtypes: list[torch.dtype] = field(default_factory=list)

    def record(self, x: torch.Tensor, logits: torch.Tensor, loss_input: torch.Tensor) -> None:
        """Note one call."""
        self.rows.append(x.reshape(-1, x.shape[-1]).shape[0])
        self.linear_out_dtypes.append(logits.dtype)
        self.loss_in_dtypes.append(loss_input.dtype)


def _logits(x: torch.Tensor, linear: torch.nn.Module, log: CallLog | None) -> torch.Tensor:
    raw = linear(x)
    up = upcast(raw)
    if log is not None:
        log.record(x, raw, up)
    return up.reshape(-1, up.shape[-1])


def n_valid(labels: torch.Tensor) -> int:
    """Tokens that count (not IGNORE_INDEX), at least 1 so an all-ignored batch has loss 0, not NaN."""
    return max(int((labels != IGNORE_INDEX).sum()), 1)


def cross_entropy(labels: torch.Tensor, *, label_smoothing: float = 0.0, z_loss: float = 0.0,
                  softcap: float | None = None, normaliser: float | None = None,
                  log: CallLog | None = None) -> ForwardFunction:
    """Token cross-entropy, mean over the non-ignored tokens of `labels`; optional smoothing, z-loss, soft-capping.

    `normaliser` overrides the count of valid tokens (fake tensors cannot count).
    """
    normaliser = normaliser or n_valid(labels)

    def forward_function(x: torch.Tensor, linear: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
        z = _logits(x, linear, log)
        if softcap is not None:
            z = softcap * torch.tanh(z / softcap)
        y = y.reshape(-1)
        loss = F.cross_entropy(z, y, ignore_index=IGNORE_INDEX, reduction="sum", label_smoothing=label_smoothing)
        if z_loss:
            loss = loss + z_loss * (z.logsumexp(-1).square() * (y != IGNORE_INDEX)).sum()
        return loss / normaliser

    return forward_function


def mse(targets: torch.Tensor, *, log: CallLog | None = None) -> ForwardFunction:
    """Mean squared error of the logits against dense targets shaped (..., vocab)."""
    normaliser = targets.numel()

    def forward_function(x: torch.Tensor, linear: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
        z = _logits(x, linear, log)
        return (z - t.reshape(z.shape).to(z.dtype)).square().sum() / normaliser

    return forward_function


def kl_to_reference(ref_logprobs: torch.Tensor, *, log: CallLog | None = None) -> ForwardFunction:
    """KL(reference || softmax(logits)), mean over rows; the reference is given as log-probabilities (..., vocab)."""
    normaliser = ref_logprobs.shape[:-1].numel()

    def forward_function(x: torch.Tensor, linear: torch.nn.Module, ref: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(_logits(x, linear, log), dim=-1)
        ref = ref.reshape(logp.shape).to(logp.dtype)
        return F.kl_div(logp, ref, log_target=True, reduction="sum") / normaliser

    return forward_function


# GRPO labels: one row of these columns per token.
GRPO_COLUMNS = ("token", "advantage", "old_logprob", "ref_logprob", "mask")


def grpo(batch: torch.Tensor, *, clip: float = 0.2, beta: float = 0.04, normaliser: float | None = None,
         log: CallLog | None = None) -> ForwardFunction:
    """GRPO per-token policy loss: clipped importance ratio times advantage, plus beta * k3 KL to the reference.

    `batch` is (..., 5) with the columns of GRPO_COLUMNS; the mean is over tokens whose mask is 1
    (`normaliser` overrides that count, for fake tensors).
    """
    normaliser = normaliser or max(float(batch[..., 4].sum()), 1.0)

    def forward_function(x: torch.Tensor, linear: torch.nn.Module, b: torch.Tensor) -> torch.Tensor:
        logp_all = torch.log_softmax(_logits(x, linear, log), dim=-1)
        b = b.reshape(-1, len(GRPO_COLUMNS))
        logp = logp_all.gather(-1, b[:, 0].long().unsqueeze(-1)).squeeze(-1)
        adv, old, ref, mask = (b[:, i].to(logp.dtype) for i in range(1, 5))
        ratio = torch.exp(logp - old)
        policy = -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        return ((policy + beta * kl) * mask).sum() / normaliser

    return forward_function


# Pieces of the randomly composed loss. Every piece is smooth (no kinks for rounding to flip) and keeps
# values of moderate size, so float64, float32 and 16-bit runs of the same recipe stay comparable.
ELEMENTWISE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softcap8": lambda z: 8 * torch.tanh(z / 8),
    "sin": torch.sin,
    "softplus": F.softplus,
    "silu": F.silu,
    "square/10": lambda z: z.square() / 10,
    "log1p_square": lambda z: torch.log1p(z.square()),
    "affine": lambda z: 1.7 * z - 0.3,
}
ROW_REDUCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "logsumexp": lambda z, i: z.logsumexp(-1),
    "mean": lambda z, i: z.mean(-1),
    "mean_square": lambda z, i: z.square().mean(-1),
    "at_label": lambda z, i: z.gather(-1, i).squeeze(-1),
    "cross_entropy": lambda z, i: z.logsumexp(-1) - z.gather(-1, i).squeeze(-1),
    "entropy": lambda z, i: -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1),
    "prob_at_label": lambda z, i: torch.softmax(z, -1).gather(-1, i).squeeze(-1),
}
ROW_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda v: v,
    "softplus": F.softplus,
    "square": torch.square,
    "sqrt1p_square": lambda v: torch.sqrt(1 + v.square()),
}


@dataclass(frozen=True)
class Recipe:
    """A composed loss: elementwise maps on the logits, a weighted sum of row reductions, a map per row."""

    maps: tuple[str, ...]
    reductions: tuple[tuple[str, float], ...]
    row_map: str

    def __str__(self) -> str:
        inner = " + ".join(f"{c:g}*{r}" for r, c in self.reductions)
        return f"sum_rows {self.row_map}({inner})  of  {' o '.join(reversed(self.maps)) or 'z'}"


def composed(recipe: Recipe, labels: torch.Tensor, *, log: CallLog | None = None) -> ForwardFunction:
    """The loss `recipe` describes, over token `labels`: ignored rows contribute 0; mean over valid rows."""
    normaliser = n_valid(labels)

    def forward_function(x: torch.Tensor, linear: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
        z = _logits(x, linear, log)
        for name in recipe.maps:
            z = ELEMENTWISE[name](z)
        y = y.reshape(-1)
        valid = y != IGNORE_INDEX
        idx = torch.where(valid, y, 0).unsqueeze(-1)
        per_row = sum(coef * ROW_REDUCTIONS[name](z, idx) for name, coef in recipe.reductions)
        return (ROW_MAPS[recipe.row_map](per_row) * valid).sum() / normaliser

    return forward_function


@dataclass
class Result:
    """A loss value and the gradients of `upstream * loss` (None where none arrived)."""

    loss: torch.Tensor
    grads: dict[str, torch.Tensor | None]


def gradients(x: torch.Tensor, linear: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """The gradients that arrived at X, the weight and (where there is one) the bias, by name."""
    grads = {"X": x.grad, "weight": linear.weight.grad}
    if linear.bias is not None:
        grads["bias"] = linear.bias.grad
    return grads


def full_logit(X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor, forward_function: ForwardFunction,
               upstream: float, *, dtype: torch.dtype | None = None, scale_after: bool = False,
               chunk_size: int | None = None) -> Result:
    """The naive version on copies of the inputs (cast to `dtype`): one autograd graph over all rows.

    `forward_function` runs on all rows at once, or with `chunk_size` on each chunk of rows, the chunk
    losses summed into the one graph (memory is no concern here). `scale_after` backpropagates 1 and
    multiplies the gradients by `upstream` afterwards (in float32).
    """
    lin = copy.deepcopy(linear)
    if dtype is not None:
        lin = lin.to(dtype)
    lin.zero_grad(set_to_none=True)
    x = X.detach().clone().to(dtype or X.dtype).requires_grad_(True)
    rows = x.reshape(-1, x.shape[-1])
    targets = labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])
    step = chunk_size or rows.shape[0]
    loss = sum(forward_function(rows[i:i + step], lin, targets[i:i + step]) for i in range(0, rows.shape[0], step))
    loss.backward(torch.tensor(1.0 if scale_after else upstream, dtype=loss.dtype, device=loss.device))
    grads = gradients(x, lin)
    if scale_after:
        grads = {k: None if g is None else (g.float() * upstream).to(g.dtype) for k, g in grads.items()}
    return Result(loss.detach(), grads)

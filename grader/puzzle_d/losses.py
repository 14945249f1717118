"""Puzzle D's forward functions: the losses the grader hands a submission, and what each call of one received.

A forward function has the submission's signature `forward_function(x_chunk, linear, labels_chunk) -> scalar`
and sums over the chunk's rows; the grader's losses (`Loss` and its kinds) carry their global normaliser, so the
sum over chunks equals the loss over all rows. Every loss upcasts the logits to at least float32 before the
loss (float64 stays float64, so the same loss yields the float64 truth). They are plain objects: they cross into
the submission's box, where the runner attaches a `CallLog` to each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100

ForwardFunction = Callable[[torch.Tensor, torch.nn.Module, torch.Tensor], torch.Tensor]  # a Loss, or any such function


def upcast(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32, or float64 if it already is: the loss never sees fewer than 32 bits."""
    return t if t.dtype == torch.float64 else t.float()


@dataclass
class CallLog:
    """What a forward function received: rows per call, the dtypes of the logits on their way to the loss, and
    whether autograd recorded the call (its logits require grad; a call it did not record gives no gradient)."""

    rows: list[int] = field(default_factory=list)
    linear_out_dtypes: list[torch.dtype] = field(default_factory=list)
    loss_in_dtypes: list[torch.dtype] = field(default_factory=list)
    logits_require_grad: list[bool] = field(default_factory=list)

    def record(self, x: torch.Tensor, logits: torch.Tensor, loss_input: torch.Tensor) -> None:
        """Note one call."""
        self.rows.append(x.reshape(-1, x.shape[-1]).shape[0])
        self.linear_out_dtypes.append(logits.dtype)
        self.loss_in_dtypes.append(loss_input.dtype)
        self.logits_require_grad.append(logits.requires_grad)


@dataclass
class Loss:
    """A forward function `loss(x_chunk, linear, labels_chunk) -> scalar` that sums over the chunk's rows, with its
    normaliser closed over. A plain object, so it can cross into the submission's box (pickled); there the runner
    attaches a `CallLog` to see what the submission hands it."""

    normaliser: float
    log: CallLog | None = field(default=None, kw_only=True)

    def logits(self, x: torch.Tensor, linear: torch.nn.Module) -> torch.Tensor:
        """`linear(x)` upcast to at least float32, as (rows, vocab); recorded in the log when there is one."""
        raw = linear(x)
        up = upcast(raw)
        if self.log is not None:
            self.log.record(x, raw, up)
        return up.reshape(-1, up.shape[-1])


def n_valid(labels: torch.Tensor) -> int:
    """Tokens that count (not IGNORE_INDEX), at least 1 so an all-ignored batch has loss 0, not NaN."""
    return max(int((labels != IGNORE_INDEX).sum()), 1)


@dataclass
class CrossEntropy(Loss):
    """Token cross-entropy summed over the chunk's valid tokens, over `normaliser`; optional label smoothing,
    z-loss and soft-capping of the logits."""

    label_smoothing: float = 0.0
    z_loss: float = 0.0
    softcap: float | None = None

    def __call__(self, x: torch.Tensor, linear: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
        z = self.logits(x, linear)
        if self.softcap is not None:
            z = self.softcap * torch.tanh(z / self.softcap)
        y = y.reshape(-1)
        loss = F.cross_entropy(z, y, ignore_index=IGNORE_INDEX, reduction="sum", label_smoothing=self.label_smoothing)
        if self.z_loss:
            loss = loss + self.z_loss * (z.logsumexp(-1).square() * (y != IGNORE_INDEX)).sum()
        return loss / self.normaliser


def cross_entropy(labels: torch.Tensor, *, label_smoothing: float = 0.0, z_loss: float = 0.0,
                  softcap: float | None = None, normaliser: float | None = None) -> CrossEntropy:
    """Token cross-entropy, mean over the non-ignored tokens of `labels`; optional smoothing, z-loss, soft-capping.

    `normaliser` overrides the count of valid tokens (fake tensors cannot count).
    """
    return CrossEntropy(normaliser or n_valid(labels), label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap)


@dataclass
class MeanSquaredError(Loss):
    """Squared error of the logits against dense targets shaped (..., vocab), summed, over `normaliser`."""

    def __call__(self, x: torch.Tensor, linear: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
        z = self.logits(x, linear)
        return (z - t.reshape(z.shape).to(z.dtype)).square().sum() / self.normaliser


def mse(targets: torch.Tensor) -> MeanSquaredError:
    """Mean squared error of the logits against dense targets shaped (..., vocab)."""
    return MeanSquaredError(targets.numel())


@dataclass
class KLToReference(Loss):
    """KL(reference || softmax(logits)) summed over rows, over `normaliser`; the reference as log-probabilities."""

    def __call__(self, x: torch.Tensor, linear: torch.nn.Module, ref: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.logits(x, linear), dim=-1)
        ref = ref.reshape(logp.shape).to(logp.dtype)
        return F.kl_div(logp, ref, log_target=True, reduction="sum") / self.normaliser


def kl_to_reference(ref_logprobs: torch.Tensor) -> KLToReference:
    """KL(reference || softmax(logits)), mean over rows; the reference is given as log-probabilities (..., vocab)."""
    return KLToReference(ref_logprobs.shape[:-1].numel())


# GRPO labels: one row of these columns per token.
GRPO_COLUMNS = ("token", "advantage", "old_logprob", "ref_logprob", "mask")


@dataclass
class GRPO(Loss):
    """GRPO per-token policy loss summed over completion tokens, over `normaliser`: clipped importance ratio times
    advantage, plus beta * k3 KL to the reference."""

    clip: float = 0.2
    beta: float = 0.04

    def __call__(self, x: torch.Tensor, linear: torch.nn.Module, b: torch.Tensor) -> torch.Tensor:
        logp_all = torch.log_softmax(self.logits(x, linear), dim=-1)
        b = b.reshape(-1, len(GRPO_COLUMNS))
        logp = logp_all.gather(-1, b[:, 0].long().unsqueeze(-1)).squeeze(-1)
        adv, old, ref, mask = (b[:, i].to(logp.dtype) for i in range(1, 5))
        ratio = torch.exp(logp - old)
        policy = -torch.minimum(ratio * adv, ratio.clamp(1 - self.clip, 1 + self.clip) * adv)
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        return ((policy + self.beta * kl) * mask).sum() / self.normaliser


def grpo(batch: torch.Tensor, *, clip: float = 0.2, beta: float = 0.04, normaliser: float | None = None) -> GRPO:
    """GRPO per-token policy loss over `batch` (..., 5) with the columns of GRPO_COLUMNS; the mean is over tokens
    whose mask is 1 (`normaliser` overrides that count, for fake tensors)."""
    return GRPO(normaliser or max(float(batch[..., 4].sum()), 1.0), clip=clip, beta=beta)


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


@dataclass
class Composed(Loss):
    """The loss `recipe` describes over token labels: ignored rows contribute 0; summed over rows, over `normaliser`."""

    recipe: Recipe | None = None

    def __call__(self, x: torch.Tensor, linear: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
        assert self.recipe is not None
        z = self.logits(x, linear)
        for name in self.recipe.maps:
            z = ELEMENTWISE[name](z)
        y = y.reshape(-1)
        valid = y != IGNORE_INDEX
        idx = torch.where(valid, y, 0).unsqueeze(-1)
        per_row = sum(coef * ROW_REDUCTIONS[name](z, idx) for name, coef in self.recipe.reductions)
        return (ROW_MAPS[self.recipe.row_map](per_row) * valid).sum() / self.normaliser


def composed(recipe: Recipe, labels: torch.Tensor) -> Composed:
    """The loss `recipe` describes, over token `labels`: ignored rows contribute 0; mean over valid rows."""
    return Composed(n_valid(labels), recipe=recipe)

"""A causal LM's head and cross-entropy loss over a fixed number of row chunks, its gradient made in forward.

transformers' `LlamaForCausalLM` materialises the logits (tokens x vocabulary, 1 GiB in bf16 for 4096 tokens
of Llama-3's 128K vocabulary), their float32 upcast inside the loss, and in backward the logits' gradient. Here
each chunk's logits live only while the chunk is processed: the loss is summed and the gradient of the hidden
states (and of the head's weight, when it trains) is computed at once, so backward only scales what forward
kept. The arithmetic is transformers' `ForCausalLMLoss` under autocast: bf16 logits, upcast to float32,
cross-entropy summed over the label tokens and divided by `num_items_in_batch` (the mean without it); the
logits' gradient rounded to the logits' dtype before the products that take it back, as autograd does.

The number of chunks is fixed rather than their size, so under `torch.compile(dynamic=True)` every sequence
length traces the same graph: the rows are padded (with ignored targets) to a multiple of `CHUNKS` and viewed
as `CHUNKS` equal chunks. (Slicing or `tensor_split` would put guards on the length's remainder and recompile;
dynamo still specialises a chunk of one row, so calls of fewer than 9 tokens compile once more.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

CHUNKS = 8  # 4096 tokens x 128256 words: 131 MB of bf16 logits per chunk instead of 1 GiB at once
IGNORE_INDEX = -100


class LinearCrossEntropy(torch.autograd.Function):
    """`F.cross_entropy((hidden @ weight.T).float(), targets, reduction="sum") / divisor`, over the first dimension
    of `hidden` (chunks x rows x features) and `targets` (chunks x rows)."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                divisor: torch.Tensor) -> torch.Tensor:
        scale = 1.0 / divisor.float()  # what autograd hands the summed loss's backward: d(sum / n) = 1 / n
        words = torch.arange(weight.shape[0], device=hidden.device)
        total, grad_parts = hidden.new_zeros((), dtype=torch.float32), []
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        for h, y in zip(hidden.unbind(), targets.unbind()):
            logits = F.linear(h, weight).float()
            total = total + F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum")
            target = (words == y.unsqueeze(1)).to(logits.dtype)
            kept = (y != IGNORE_INDEX).unsqueeze(1)
            grad_logits = ((logits.softmax(dim=1) - target) * kept * scale).to(h.dtype)
            grad_parts.append(grad_logits @ weight)
            if grad_weight is not None:
                grad_weight += (grad_logits.t() @ h).float()
        ctx.save_for_backward(torch.stack(grad_parts), grad_weight)
        ctx.weight_dtype = weight.dtype
        return total / divisor

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None, None]:
        grad_hidden, grad_weight = ctx.saved_tensors
        grad_weight = None if grad_weight is None else (grad_weight * grad).to(ctx.weight_dtype)
        return grad_hidden * grad.to(grad_hidden.dtype), grad_weight, None, None


def causal_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                   num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor:
    """transformers' causal LM loss of `hidden @ weight.T` (labels shifted left by one), without full logits."""
    targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)
    if num_items_in_batch is None:
        divisor = (targets != IGNORE_INDEX).sum()
    else:
        divisor = torch.as_tensor(num_items_in_batch, device=hidden.device)
    compute = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(hidden.device.type) \
        else hidden.dtype
    flat = hidden.reshape(-1, hidden.shape[-1]).to(compute)
    rows = flat.shape[0]
    per_chunk = (rows + CHUNKS - 1) // CHUNKS
    pad = CHUNKS * per_chunk - rows
    chunks = F.pad(flat, (0, 0, 0, pad)).view(CHUNKS, per_chunk, flat.shape[1])
    chunk_targets = F.pad(targets, (0, pad), value=IGNORE_INDEX).view(CHUNKS, per_chunk)
    return LinearCrossEntropy.apply(chunks, weight.to(compute), chunk_targets, divisor)

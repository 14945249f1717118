"""The Llama that D's `llama_1B_training_loss_matches` trains twice: stock in the judge, through the submission's LM
head and loss in its box. Both build it from the same config and seed and take the same AdamW steps on the same
batches; random weights from a config, nothing downloaded: on a GPU the Llama-3.2-1B architecture, elsewhere a tiny
one. Float32 throughout (TF32 off), tied embeddings as in Llama-3.2-1B, so the LM head's gradient adds to the
embedding's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from grader.llama import LLAMA_3_2_1B, TINY_TRAINING, ModelSpec
from grader.puzzle_d.losses import IGNORE_INDEX, cross_entropy

# LlamaConfig arguments besides the sizes: Llama-3.2-1B's context and RoPE base on a GPU, a short context on CPU.
CONTEXT = {True: dict(max_position_embeddings=131072, rope_theta=500000.0), False: dict(max_position_embeddings=256)}
STEPS, LR = 5, 1e-3
SHAPE = {True: (2, 512), False: (2, 48)}  # (batch, sequence) per step
CHUNK = {True: 256, False: 16}  # the chunk size handed to the submission


@dataclass(frozen=True)
class TrainingRun:
    """What one model's training left: per-step losses, first-step gradients, final weights (parameter order)."""

    losses: list[float]
    first_grads: list[torch.Tensor]
    final: list[torch.Tensor]


def spec_for(device: torch.device) -> ModelSpec:
    """The architecture trained on `device`."""
    return LLAMA_3_2_1B if device.type == "cuda" else TINY_TRAINING


def build(device: torch.device) -> torch.nn.Module:
    """The model, its weights drawn from seed 0 on `device`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    on_gpu = device.type == "cuda"
    config = LlamaConfig(**spec_for(device).sizes(), **CONTEXT[on_gpu], tie_word_embeddings=True,
                         attn_implementation="eager")
    torch.manual_seed(0)
    with torch.device(device):
        return LlamaForCausalLM(config)


def batches(model: torch.nn.Module, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """STEPS batches of token ids and labels (a prompt quarter that does not count)."""
    g = torch.Generator().manual_seed(0)
    bsz, seq = SHAPE[device.type == "cuda"]
    out = []
    for _ in range(STEPS):
        ids = torch.randint(0, model.config.vocab_size, (bsz, seq), generator=g)
        labels = ids.clone()
        labels[:, : seq // 4] = IGNORE_INDEX
        out.append((ids.to(device), labels.to(device)))
    return out


def train(model: torch.nn.Module, steps: list[tuple[torch.Tensor, torch.Tensor]],
          loss_of: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]) -> TrainingRun:
    """AdamW steps over `steps`: the per-step losses, the first step's gradients and the final weights."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    losses, first_grads = [], []
    for ids, labels in steps:
        loss = loss_of(model, ids, labels)
        loss.backward()
        if not first_grads:
            first_grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return TrainingRun(losses, first_grads, [p.detach() for p in model.parameters()])


def stock_loss(model: torch.nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers' own loss: `LlamaForCausalLM(labels=...)`."""
    return model(input_ids=ids, labels=labels).loss


def chunked_loss(memory_efficient_linear: Callable[..., Any], chunk: int) -> Callable[..., torch.Tensor]:
    """The loss through `memory_efficient_linear`: hidden states -> LM head + cross-entropy, shifted as stock."""
    def loss_of(model: torch.nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = model.model(input_ids=ids).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        return memory_efficient_linear(hidden, model.lm_head, targets, cross_entropy(targets), chunk)
    return loss_of

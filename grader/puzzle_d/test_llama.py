"""D.llama_1B_training_loss_matches: a Llama whose LM head + loss run through the submission trains like the stock one.

Random weights from a config, nothing downloaded: on a GPU the Llama-3.2-1B architecture, elsewhere a tiny
one. Both copies start from the same weights and take the same AdamW steps on the same batches. Float32
throughout (TF32 off), tied embeddings as in Llama-3.2-1B, so the LM head's gradient adds to the embedding's.

Checked by `standard.compare_training`: the per-step losses, every parameter's gradient at the first step and
each parameter's final weights, by relative norms (the tolerances and their reasons are there).
"""

from __future__ import annotations

import copy
from typing import Callable

import pytest
import torch

from grader.llama import LLAMA_3_2_1B, TINY_TRAINING
from grader.puzzle_d.oracles import IGNORE_INDEX, cross_entropy
from grader.puzzle_d.standard import TrainingRun, compare_training

# LlamaConfig arguments besides the sizes: Llama-3.2-1B's context and RoPE base on a GPU, a short context on CPU.
CONTEXT = {True: dict(max_position_embeddings=131072, rope_theta=500000.0), False: dict(max_position_embeddings=256)}
STEPS, LR = 5, 1e-3


def _batches(vocab: int, bsz: int, seq: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(STEPS):
        ids = torch.randint(0, vocab, (bsz, seq), generator=g)
        labels = ids.clone()
        labels[:, : seq // 4] = IGNORE_INDEX  # a prompt that does not count
        out.append((ids.to(device), labels.to(device)))
    return out


def _train(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
           loss_of: Callable[..., torch.Tensor]) -> TrainingRun:
    """AdamW steps over `batches`: the per-step losses, the first step's gradients and the final weights."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    losses, first_grads = [], []
    for ids, labels in batches:
        loss = loss_of(model, ids, labels)
        loss.backward()
        if not first_grads:
            first_grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return TrainingRun(losses, first_grads, [p.detach() for p in model.parameters()])


@pytest.mark.criterion("D", "llama_1B_training_loss_matches")
def test_llama_trains_like_stock(memory_efficient_linear, device, criterion_detail):
    """Stock `LlamaForCausalLM(labels=...)` loss against hidden states -> submission(lm_head, CE)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    on_gpu = device.type == "cuda"
    spec = LLAMA_3_2_1B if on_gpu else TINY_TRAINING
    config = LlamaConfig(**spec.sizes(), **CONTEXT[on_gpu], tie_word_embeddings=True, attn_implementation="eager")
    bsz, seq = (2, 512) if on_gpu else (2, 48)
    torch.manual_seed(0)
    with torch.device(device):
        stock = LlamaForCausalLM(config)
    ours = copy.deepcopy(stock)
    batches = _batches(config.vocab_size, bsz, seq, device)

    def chunked(model, ids, labels):
        hidden = model.model(input_ids=ids).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        return memory_efficient_linear(hidden, model.lm_head, targets, cross_entropy(targets), 256 if on_gpu else 16)

    initial = [p.detach().clone() for p in stock.parameters()]
    expected = _train(stock, batches, lambda m, ids, labels: m(input_ids=ids, labels=labels).loss)
    got = _train(ours, batches, chunked)
    names = [n for n, _ in stock.named_parameters()]
    verdict = compare_training(got, expected, initial, names, criterion="llama_1B_training_loss_matches",
                               model=spec.name, steps=STEPS)
    criterion_detail(f"{spec.name}, random weights, {STEPS} AdamW steps: losses {['%.5f' % v for v in got.losses]} "
                     f"vs stock {['%.5f' % v for v in expected.losses]}; worst relative difference: first-step "
                     f"gradient {verdict.gradient_error:.1e}, final weights {verdict.weight_error:.1e} of the "
                     "distance trained")
    assert not verdict.reasons, "\n".join(verdict.reasons)

"""D.llama_1B_training_loss_matches: a Llama whose LM head + loss run through the submission trains like the stock one.

Random weights from a config, nothing downloaded: on a GPU the Llama-3.2-1B architecture, elsewhere a tiny
one. Both copies start from the same weights and take the same AdamW steps on the same batches. Float32
throughout (TF32 off), tied embeddings as in Llama-3.2-1B, so the LM head's gradient adds to the embedding's.

Checked: the per-step losses; every parameter's gradient at the first step (relative norm 1e-4: AdamW's
normalised step would hide a gradient off by a constant factor); and each parameter's final weights against
how far training moved them (relative norm 1e-2). Not elementwise: AdamW turns noise in near-zero gradients
into lr-sized steps, and on an H100 the summation-order noise of two correct runs left 109k of the 262M
embedding elements up to 4e-3 apart after 5 steps while the losses agreed to 1e-5.
"""

from __future__ import annotations

import copy

import pytest
import torch

from grader.compare import assert_close
from grader.llama import LLAMA_3_2_1B, ModelSpec
from grader.puzzle_d.oracles import IGNORE_INDEX, cross_entropy

TINY = ModelSpec("tiny Llama", 64, 128, 2, 4, 2, 1000)
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


def _train(model: torch.nn.Module, batches: list, loss_of: callable) -> tuple[list[float], list[torch.Tensor]]:
    """AdamW steps over `batches`: the per-step losses and the first step's gradients."""
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
    return losses, first_grads


def _relative(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    """||a - b|| / ||scale|| in float64 (0 when both norms are 0)."""
    num, den = (a.double() - b.double()).norm().item(), scale.double().norm().item()
    return num / den if den else (0.0 if num == 0 else float("inf"))


@pytest.mark.criterion("D", "llama_1B_training_loss_matches")
def test_llama_trains_like_stock(memory_efficient_linear, device, criterion_detail):
    """Stock `LlamaForCausalLM(labels=...)` loss against hidden states -> submission(lm_head, CE)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    on_gpu = device.type == "cuda"
    spec = LLAMA_3_2_1B if on_gpu else TINY
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
    expected, expected_grads = _train(stock, batches, lambda m, ids, labels: m(input_ids=ids, labels=labels).loss)
    got, got_grads = _train(ours, batches, chunked)
    name = spec.name
    names = [n for n, _ in stock.named_parameters()]
    grad_err = max(_relative(g, e, e) for g, e in zip(got_grads, expected_grads))
    weight_err = max(_relative(p, q, q - w) for p, q, w in zip(ours.parameters(), stock.parameters(), initial))
    criterion_detail(f"{name}, random weights, {STEPS} AdamW steps: losses {['%.5f' % v for v in got]} vs stock "
                     f"{['%.5f' % v for v in expected]}; worst relative difference: first-step gradient "
                     f"{grad_err:.1e}, final weights {weight_err:.1e} of the distance trained")
    assert_close(torch.tensor(got), torch.tensor(expected), atol=1e-4, rtol=1e-4,
                 what=f"D.llama_1B_training_loss_matches: per-step training loss ({name})")
    for n, g, e in zip(names, got_grads, expected_grads):
        assert _relative(g, e, e) <= 1e-4, (
            f"D.llama_1B_training_loss_matches: first-step gradient of {n} differs from stock by "
            f"{_relative(g, e, e):.2e} of its norm (at most 1e-4) ({name})")
    for n, p, q, w in zip(names, ours.parameters(), stock.parameters(), initial):
        assert _relative(p, q, q - w) <= 1e-2, (
            f"D.llama_1B_training_loss_matches: after {STEPS} steps {n} differs from stock by "
            f"{_relative(p, q, q - w):.2e} of the distance training moved it (at most 1e-2) ({name})")

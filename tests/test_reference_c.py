"""C's reference, piece by piece, on the CPU: each part it puts in place of transformers' or PEFT's code computes
what that code computes, and compiles once for every length.

The grader holds the whole compiled training run to the eager oracle (`grader/puzzle_c`); these tests pin the
parts where they differ from the library code they replace: the LoRA custom op (bit-exact with PEFT's eager
forward and backward), the chunked head and loss (transformers' `ForCausalLMLoss` up to the order of its float32
sums), the flex-attention block mask (transformers' own), and the fallbacks to the library's code.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

import solutions.qlora_compile as reference
from grader.llama import TINY_QLORA
from grader.measure import dynamo
from grader.puzzle_c import training
from grader.puzzle_c.builders import build_qlora_model, make_schedule
from solutions.fused_head_loss import causal_lm_loss
from solutions.lora_ops import use_lora_op

CPU = torch.device("cpu")
SHAPES = [[(2, 48), (3, 61)]]  # two micro-batches of one step, two batch sizes, padded


def _model() -> torch.nn.Module:
    return build_qlora_model(TINY_QLORA, dtype=torch.bfloat16, device=CPU, seed=1)


def _train_step(model: torch.nn.Module) -> tuple[list[float], dict[str, torch.Tensor]]:
    """One accumulated step through the grader's training loop: the micro-batches' losses and the LoRA gradients."""
    schedule = make_schedule(vocab_size=TINY_QLORA.vocab_size, shapes=SHAPES, device=CPU, seed=3)
    record = training.train(model, schedule, dtype=torch.bfloat16, device=CPU, keep=True)
    return [m.loss for m in record.micro], record.step_grads[0]


def test_lora_op_is_peft_bit_for_bit() -> None:
    """Every adapter routed through the custom op: the same losses and LoRA gradients as PEFT, to the bit."""
    peft_losses, peft_grads = _train_step(_model())
    model = _model()
    assert use_lora_op(model) == 2 * 7  # two layers, seven targets each
    losses, grads = _train_step(model)
    assert losses == peft_losses
    assert grads.keys() == peft_grads.keys()
    for name, grad in grads.items():
        assert torch.equal(grad, peft_grads[name]), name


def test_lora_op_keeps_a_forward_already_replaced() -> None:
    """A layer whose forward the caller replaced (a submission's own patch) is left as it is."""
    model = _model()
    o_proj = model.get_base_model().model.layers[0].self_attn.o_proj
    o_proj.forward = o_proj.base_layer.forward
    assert use_lora_op(model) == 2 * 7 - 1
    assert o_proj.forward == o_proj.base_layer.forward


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.mark.parametrize("upstream", [1.0, 3.0], ids=["loss.backward()", "3 * loss"])
@pytest.mark.parametrize("num_items", [True, False], ids=["num_items_in_batch", "mean"])
@pytest.mark.parametrize("weight_trains", [False, True], ids=["frozen head", "trained head"])
def test_chunked_loss_is_transformers_loss(upstream: float, num_items: bool, weight_trains: bool) -> None:
    """Loss, hidden-state and head gradients of transformers' ForCausalLMLoss on `lm_head(hidden)`, under bf16
    autocast, from an uneven number of rows (padded to the chunks) with ignored labels and a fully ignored row."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    g = torch.Generator().manual_seed(0)
    batch, length, hidden_size, vocab = 3, 37, 64, 500
    hidden = torch.randn(batch, length, hidden_size, generator=g).bfloat16()
    weight = (torch.randn(vocab, hidden_size, generator=g) * hidden_size ** -0.5).bfloat16()
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    labels[0, 20:] = -100
    labels[2] = -100
    items = torch.tensor(int((labels[:, 1:] != -100).sum())) if num_items else None

    def run(loss_of) -> tuple[torch.Tensor, ...]:
        h = hidden.clone().requires_grad_()
        w = weight.clone().requires_grad_(weight_trains)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_of(h, w)
        (upstream * loss).backward()
        return loss.detach(), h.grad, w.grad

    expected = run(lambda h, w: ForCausalLMLoss(F.linear(h, w), labels, vocab, num_items_in_batch=items))
    got = run(lambda h, w: causal_lm_loss(h, w, labels, items))
    # float32 sums over 8 chunks instead of one: a few ulps of the loss
    torch.testing.assert_close(got[0], expected[0], rtol=4 * 2**-23, atol=0)
    assert got[1].dtype == expected[1].dtype == torch.bfloat16
    # The logits' gradient rounded to bf16 as autograd rounds it, then the same product, its float32 sums in the
    # order the chunk's shape gets from the matmul library: a bf16 rounding (2^-8) apart at most; for an upstream
    # gradient other than 1, backward scales forward's bf16 result, one more rounding than autograd's.
    assert _relative(got[1], expected[1]) <= (1 if upstream == 1.0 else 2) * 2**-8
    if weight_trains:  # summed over the chunks in float32 and rounded once, where autograd rounds one bf16 product
        assert _relative(got[2], expected[2]) <= 2 * 2**-8
    else:
        assert got[2] is None


def test_chunked_loss_compiles_once_for_every_length() -> None:
    """Under `torch.compile(dynamic=True)`, row counts with every remainder modulo the chunk count reuse one graph
    (batches of 2 or more: dynamo specialises any size of 1, the decoder layers' graphs too)."""
    torch._dynamo.reset()
    compiled = torch.compile(causal_lm_loss, dynamic=True)
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(100, 16, generator=g)
    with dynamo.record() as report:
        for batch, length in [(2, 48), (3, 61), (2, 37), (2, 101), (2, 9), (3, 64)]:
            hidden = torch.randn(batch, length, 16, generator=g, requires_grad=True)
            labels = torch.randint(0, 100, (batch, length), generator=g)
            compiled(hidden, weight, labels, None).backward()
    torch._dynamo.reset()
    assert report.compilations == 1, [str(r) for r in report.recompiles]


def test_block_mask_is_transformers_flex_mask() -> None:
    """The eagerly built block mask is the one transformers' flex-attention path builds: causal, padded keys out."""
    from transformers.masking_utils import flex_attention_mask

    attention_mask = torch.ones(3, 300, dtype=torch.long)
    attention_mask[0, 170:] = 0
    attention_mask[2, 1:] = 0
    ours = reference._padding_block_mask(attention_mask)
    theirs = flex_attention_mask(3, 300, 300, attention_mask=attention_mask.bool(), device="cpu")
    assert ours.shape == theirs.shape
    assert torch.equal(ours.to_dense(), theirs.to_dense())
    q, kv = torch.arange(300).view(300, 1), torch.arange(300).view(1, 300)
    dense = torch.stack([(kv <= q) & attention_mask[b].bool().view(1, 300) for b in range(3)])
    assert torch.equal(ours.mask_mod(*torch.meshgrid(torch.arange(3), torch.zeros(1, dtype=torch.long),
                                                      torch.arange(300), torch.arange(300), indexing="ij")).squeeze(1),
                       dense)


def test_fused_head_only_where_it_computes_the_model_s_loss() -> None:
    """The chunked head-loss replaces transformers' causal LM loss only: a custom `loss_function` (a submission's
    checks, another loss) or a replaced forward keeps the model's own path."""
    lm = _model().get_base_model()
    assert reference._fused_head_applies(lm)
    lm.loss_function = lambda *args, **kwargs: 0
    assert not reference._fused_head_applies(lm)
    other = _model().get_base_model()
    other.forward = other.forward
    assert not reference._fused_head_applies(other)


def test_calls_without_labels_are_transformers_own() -> None:
    """Generation-style calls (no labels) go to transformers' forward and return its logits."""
    model = _model()
    lm = model.get_base_model()
    lm.forward = types.MethodType(reference._causal_lm_forward(causal_lm_loss), lm)
    ids = torch.randint(0, TINY_QLORA.vocab_size, (2, 12))
    with torch.no_grad():
        out = model(input_ids=ids)
        expected = type(lm).forward(lm, input_ids=ids)
    assert out.loss is None
    assert torch.equal(out.logits, expected.logits)

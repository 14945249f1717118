"""The QLoRA Llama that puzzle C compiles, built from a config with random weights (nothing downloaded),
and the synthetic batches it trains on.

The model follows the notebook: every linear layer of the decoder is a bitsandbytes 4-bit NF4
`Linear4bit` with double quantization and the run's compute dtype; PEFT LoRA r=32, alpha=64, dropout 0
on q,k,v,o,gate,up,down; only LoRA weights train; `enable_input_require_grads()` as the notebook calls it.
One departure, for a sharper test: LoRA B starts random instead of zero (`init_lora_weights=False`),
so the adapters change the loss from the first step and a submission that mis-scales them is caught there;
and weights start at std hidden**-0.5 (Llama-3.2-1B's 0.02 at its width) so that the tiny model's logits
are not all near zero, which would pin every loss at log(vocab) whatever the adapters do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grader.llama import ModelSpec

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class MicroBatch:
    """One forward/backward: right-padded token ids, attention mask, labels (-100 on padding)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        """(batch size, padded sequence length)."""
        return tuple(self.input_ids.shape)  # type: ignore[return-value]


@dataclass(frozen=True)
class Schedule:
    """The optimizer steps of a run: each a list of gradient-accumulation micro-batches."""

    steps: tuple[tuple[MicroBatch, ...], ...]

    @property
    def lengths(self) -> list[int]:
        """Padded sequence lengths in the order they run."""
        return [mb.shape[1] for step in self.steps for mb in step]

    def describe(self) -> str:
        """One line: steps, micro-batches, distinct lengths and batch sizes."""
        shapes = [mb.shape for step in self.steps for mb in step]
        return (f"{len(self.steps)} optimizer steps x {len(self.steps[0])} accumulated micro-batches, "
                f"{len({s[1] for s in shapes})} distinct padded lengths {sorted({s[1] for s in shapes})}, "
                f"batch sizes {sorted({s[0] for s in shapes})}")


def build_qlora_model(spec: ModelSpec, *, dtype: torch.dtype, device: torch.device, seed: int) -> torch.nn.Module:
    """A `peft.PeftModel` around a random-weight Llama whose decoder linears are 4-bit NF4 (double quant)."""
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        **spec.sizes(), max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
        initializer_range=spec.hidden_size ** -0.5, attn_implementation="sdpa")
    model = LlamaForCausalLM(config).to(dtype)
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, linear in list(parent.named_children()):
                if isinstance(linear, torch.nn.Linear):
                    setattr(parent, name, _quantize(bnb, linear, dtype, device))
    model.to(device)
    lora = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=list(LORA_TARGETS), init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            param.requires_grad_(".lora_A." in name or ".lora_B." in name)
    peft_model.enable_input_require_grads()
    return peft_model


def _quantize(bnb, linear: torch.nn.Linear, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """An NF4 `Linear4bit` (double quantization, compute dtype `dtype`) holding `linear`'s weight."""
    q = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                          compute_dtype=dtype, compress_statistics=True, quant_type="nf4", device="meta")
    q.weight = bnb.nn.Params4bit(linear.weight.data.to(dtype), requires_grad=False, compress_statistics=True,
                                 quant_type="nf4", module=q)
    if linear.bias is not None:
        q.bias = torch.nn.Parameter(linear.bias.data.to(dtype), requires_grad=False)
    q.to(device)  # quantizes; quant_state.dtype follows the weight's dtype
    return q


def make_schedule(*, vocab_size: int, shapes: list[list[tuple[int, int]]], device: torch.device,
                  seed: int) -> Schedule:
    """Random token batches for `shapes` ([[(batch, padded length), ...] per optimizer step]).

    Rows are right-padded: row 0 fills the padded length, the last row stops short of it (so every
    micro-batch carries a padding mask), rows between stop at random lengths of at least half of it;
    padding has attention mask 0 and label -100.
    """
    gen = torch.Generator().manual_seed(seed)
    steps = []
    for step_shapes in shapes:
        micro = []
        for batch, length in step_shapes:
            ids = torch.randint(0, vocab_size, (batch, length), generator=gen)
            keep = torch.randint(length // 2, length, (batch,), generator=gen)
            keep[0] = length
            mask = (torch.arange(length)[None, :] < keep[:, None]).long()
            labels = ids.masked_fill(mask == 0, -100)
            micro.append(MicroBatch(ids.to(device), mask.to(device), labels.to(device)))
        steps.append(tuple(micro))
    return Schedule(tuple(steps))

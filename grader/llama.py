"""Llama architectures that the grader builds with random weights from a config (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ModelSpec:
    """Llama architecture sizes, and a name for scorecards."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int

    def sizes(self) -> dict[str, int]:
        """The `transformers.LlamaConfig` arguments this spec fixes."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}


# Llama-3.2-1B's architecture (random weights): puzzle C's and D's GPU model.
LLAMA_3_2_1B = ModelSpec("Llama-3.2-1B architecture", 2048, 8192, 16, 32, 8, 128256)
# The CPU stand-ins, one per puzzle, GQA kept (4 heads, 2 KV heads). C's is the larger: its QLoRA layers need
# hidden sizes that bitsandbytes' 64-element blocks divide and enough work for graphs worth compiling, and eager
# plus compiled training must still fit CI on two cores. D trains its Llama five steps, twice, through the full
# vocabulary: the smallest model that exercises the loss is enough (its tolerances were measured on it).
TINY_QLORA = ModelSpec("tiny Llama (CPU)", 256, 512, 2, 4, 2, 1024)
TINY_TRAINING = ModelSpec("tiny Llama", 64, 128, 2, 4, 2, 1000)

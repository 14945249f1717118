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

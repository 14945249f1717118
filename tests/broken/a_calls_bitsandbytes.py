"""Broken A: correct, because it simply calls bitsandbytes (no Triton kernel of its own)."""

from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401

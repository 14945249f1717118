"""Broken A: always returns float16, even for a bfloat16 quant state."""

from tests.broken._simple_nf4 import make

dequantize_nf4 = make(force_fp16=True)

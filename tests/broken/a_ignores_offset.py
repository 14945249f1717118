"""Broken A: ignores the offset that bitsandbytes subtracts before quantizing the absmax."""

from tests.broken._simple_nf4 import make

dequantize_nf4 = make(ignore_offset=True)

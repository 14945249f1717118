"""Puzzle A, `tested_in_f16_and_bf16`: the notebook's own test, reproduced.

The notebook builds an MLP of three bitsandbytes `Linear4bit` layers per (bsz, qlen, hd, m, seed, dtype),
checks `assert_correct_bnb`, compares an MLP forward through the candidate's dequantization with the
module's own forward, and each dequantized weight with Unsloth's `fast_dequantize`, all with
`torch.testing.assert_close` defaults. On a GPU the notebook's sizes are used; on CPU the same cases at
reduced sizes, with bitsandbytes' `dequantize_4bit` standing in for `fast_dequantize` (CUDA only).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grader.puzzle_a import oracles

# (bsz, qlen, hd, m, seed, dtype), as in the notebook.
NOTEBOOK_CASES = [
    (2, 3333, 2048, 8192, 3407, torch.float16),
    (5, 777, 1024, 4096, 3409, torch.bfloat16),
    (3, 2048, 4096, 14336, 3408, torch.bfloat16),
]
# The same cases at CPU sizes (hd and m divided by 16, qlen by ~30).
CPU_CASES = [(2, 111, 128, 512, 3407, torch.float16), (5, 26, 64, 256, 3409, torch.bfloat16),
             (3, 68, 256, 896, 3408, torch.bfloat16)]


def linear4bit(hd: int, m: int, dtype: torch.dtype) -> nn.Module:
    """The notebook's `bnb_Linear4bit(hd, m, dtype)`."""
    from bitsandbytes.nn import Linear4bit

    return Linear4bit(hd, m, bias=None, compute_dtype=dtype, compress_statistics=True, quant_type="nf4")


class MLP(nn.Module):
    """The notebook's MLP: gate, up and down projections as 4-bit layers, SiLU gating."""

    def __init__(self, hd: int, m: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.gate_proj = linear4bit(hd, m, dtype).to(device)
        self.up_proj = linear4bit(hd, m, dtype).to(device)
        self.down_proj = linear4bit(m, hd, dtype).to(device)
        for layer in (self.gate_proj, self.up_proj, self.down_proj):
            layer.weight.quant_state.dtype = dtype
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def assert_correct_bnb(mlp: MLP, dtype: torch.dtype) -> None:
    """The notebook's check that the layers hold a double-quantized NF4 state of the right dtypes."""
    for layer in (mlp.gate_proj, mlp.up_proj, mlp.down_proj):
        w = layer.weight
        qs = w.quant_state
        assert w.dtype == torch.uint8 and qs.dtype == dtype and qs.absmax.dtype == torch.uint8
        assert qs.code.dtype == torch.float32 and qs.offset.dtype == torch.float32 and qs.blocksize == 64
        assert qs.state2.absmax.dtype == torch.float32 and qs.state2.code.dtype == torch.float32
        assert qs.state2.blocksize == 256


def mlp_forward(x: torch.Tensor, mlp: MLP, fx) -> torch.Tensor:
    """The notebook's `mlp_forward`: the MLP through dequantized weights."""
    up = x @ fx(mlp.up_proj).t()
    gate = x @ fx(mlp.gate_proj).t()
    return (mlp.act_fn(gate) * up) @ fx(mlp.down_proj).t()


def module_adapter(dequantize_nf4):
    """The notebook's `your_dequantize_nf4(module)` form, built from the contract's function."""
    return lambda layer: dequantize_nf4(layer.weight, layer.weight.quant_state)


@pytest.mark.criterion("A", "tested_in_f16_and_bf16")
@pytest.mark.parametrize("case", range(3), ids=["fp16-2048x8192", "bf16-1024x4096", "bf16-4096x14336"])
def test_notebook_case(dequantize_nf4, device, case, criterion_detail):
    bsz, qlen, hd, m, seed, dtype = (NOTEBOOK_CASES if device.type == "cuda" else CPU_CASES)[case]
    torch.manual_seed(seed)
    mlp = MLP(hd, m, dtype, device)
    x = torch.randn((bsz, qlen, hd), device=device, dtype=dtype)
    fx = module_adapter(dequantize_nf4)
    if device.type == "cuda":
        reference = lambda layer: oracles.fast_dequantize(layer.weight, layer.weight.quant_state)  # noqa: E731
    else:
        reference = lambda layer: oracles.bnb_dequantize(  # noqa: E731
            oracles.Quantized(layer.weight, layer.weight.quant_state))
    for _ in range(2):  # the notebook's two warm-up rounds
        out = mlp_forward(x, mlp, fx)
        assert out.dtype == dtype, f"MLP output dtype {out.dtype}, expected {dtype}"
        torch.testing.assert_close(out, mlp(x), check_stride=True)
        assert_correct_bnb(mlp, dtype)
        for name in ("up_proj", "gate_proj", "down_proj"):
            layer = getattr(mlp, name)
            got = fx(layer)
            assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {dtype}"
            torch.testing.assert_close(got, reference(layer), check_stride=True, msg=lambda m: f"{name}: {m}")
    criterion_detail(f"notebook case bsz={bsz} qlen={qlen} hd={hd} m={m} {str(dtype).removeprefix('torch.')}")

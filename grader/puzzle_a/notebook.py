"""The notebook's puzzle-A harness as plain code: its cases, its MLP of 4-bit layers, its checks."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

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


def protocol_seconds(fx: Callable[[torch.Tensor, Any], torch.Tensor],
                     cases: list[list[tuple[torch.Tensor, Any]]]) -> list[float]:
    """The notebook's timing loop (`mlp_dequantize` x1000): per case, 1000 x (up, gate, down) through `fx`,
    synchronising after each call; the seconds per case on the host clock, from and to an idle device."""
    seconds = []
    for layers in cases:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(1000):
            for w, qs in layers:
                fx(w, qs).t()
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds


def mlp_forward(x: torch.Tensor, mlp: MLP, fx) -> torch.Tensor:
    """The notebook's `mlp_forward`: the MLP through dequantized weights."""
    up = x @ fx(mlp.up_proj).t()
    gate = x @ fx(mlp.gate_proj).t()
    return (mlp.act_fn(gate) * up) @ fx(mlp.down_proj).t()

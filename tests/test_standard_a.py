"""Puzzle A's correctness standard reads a weight without changing it: judging a `Linear4bit` weight must not
move its quant state (on a GPU, `Params4bit.cpu()` moved it to the host in place and the next CUDA
dequantization faulted; seen on the H200, 2026-12-02)."""

from __future__ import annotations

import torch

from grader.puzzle_a import oracles, standard
from grader.puzzle_a.notebook import linear4bit


def test_judging_a_params4bit_never_moves_it(monkeypatch):
    """`judge` on a layer's own weight calls none of `Params4bit`'s moving methods, and finds it correct."""
    from bitsandbytes.nn import Params4bit

    def refuse(self, *args, **kwargs):
        raise AssertionError("Params4bit.to/.cpu/.cuda move the quant state in place")

    layer = linear4bit(64, 256, torch.float16).to("cpu")  # quantized on the move, as the notebook's .to(device)
    layer.weight.quant_state.dtype = torch.float16
    weight, qs = layer.weight, layer.weight.quant_state
    out = oracles.bnb_dequantize(oracles.Quantized(weight.as_subclass(torch.Tensor), qs)).reshape(qs.shape)
    for name in ("to", "cpu", "cuda"):
        monkeypatch.setattr(Params4bit, name, refuse)
    assert standard.judge(out, weight, qs, what="a Linear4bit weight").passed


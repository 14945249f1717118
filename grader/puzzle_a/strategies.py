"""Hypothesis strategies for puzzle A: weight shapes, dtypes and value distributions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

BLOCK, SECOND_LEVEL = 64, 256
BOUNDARY = BLOCK * SECOND_LEVEL  # elements covered by one second-level absmax
PUZZLE_DTYPES = (torch.float16, torch.bfloat16)  # the output dtypes the puzzle asks for
# The largest weight drawn: on a GPU, one size; on a CPU, where the Triton interpreter pays per program instance, per
# Hypothesis profile (grader.judging.profiles; the ci profile keeps 16 second-level absmax groups, dev and thorough 64).
GPU_MAX_NUMEL = 1 << 25
CPU_MAX_NUMEL = {"ci": 1 << 18, "dev": 1 << 20, "thorough": 1 << 20}


@dataclass(frozen=True)
class WeightCase:
    """A weight to quantize: its shape, dtype, value distribution and the seed that fills it."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    scale: float
    outliers: bool
    zero_blocks: bool
    seed: int

    def make(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The weight itself: normal values times `scale`, with optional outliers and all-zero blocks."""
        g = torch.Generator().manual_seed(self.seed)
        n = math.prod(self.shape)
        w = torch.randn(n, generator=g) * self.scale
        if self.outliers and n:
            idx = torch.randint(0, n, (max(1, n // 500),), generator=g)
            w[idx] *= 1000
        if self.zero_blocks and n >= BLOCK:
            blocks = torch.randint(0, n // BLOCK, (max(1, n // (BLOCK * 8)),), generator=g)
            w.view(-1)[: (n // BLOCK) * BLOCK].view(-1, BLOCK)[blocks] = 0
        limit = torch.finfo(self.dtype).max / 4  # finite in the dtype, with room for the absmax code
        return w.clamp(-limit, limit).view(self.shape).to(self.dtype).to(device)


def numels(*, max_numel: int) -> st.SearchStrategy[int]:
    """Element counts from 1 to `max_numel`, weighted towards block edges and the 256-block boundary."""
    if max_numel < 1:
        raise ValueError("max_numel must be at least 1")
    near = st.builds(lambda k, d: k + d, st.sampled_from([BLOCK, 2 * BLOCK, BOUNDARY, 2 * BOUNDARY, 3 * BOUNDARY]),
                     st.integers(-3, 3))
    return st.one_of(st.integers(1, 200), near, st.integers(1, max_numel)).filter(lambda n: 1 <= n <= max_numel)


@st.composite
def shapes(draw: st.DrawFn, *, max_numel: int) -> tuple[int, ...]:
    """1-D or 2-D shapes with at most `max_numel` elements, odd sizes included."""
    n = draw(numels(max_numel=max_numel))
    if n == 1 or draw(st.booleans()):
        return (n,)
    cols = draw(st.sampled_from([d for d in (1, 3, 7, 63, 64, 65, 127, 256, 1000, 4096) if d <= n] or [1]))
    return (max(1, n // cols), cols)


def weight_cases(*, max_numel: int, dtypes: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)
                 ) -> st.SearchStrategy[WeightCase]:
    """Weights to quantize: shapes up to `max_numel`, the given dtypes, varied scales, outliers and zero blocks."""
    return st.builds(
        WeightCase,
        shape=shapes(max_numel=max_numel),
        dtype=st.sampled_from(dtypes),
        scale=st.sampled_from([1e-3, 0.02, 1.0, 50.0]),
        outliers=st.booleans(),
        zero_blocks=st.booleans(),
        seed=st.integers(0, 2**31 - 1),
    )

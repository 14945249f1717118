"""Hypothesis strategies for puzzle D: problem shapes, chunk sizes, upstream scales and composed-loss recipes.

Tensors are not drawn element by element: a problem carries a seed and `build()` makes the tensors from
it, so examples stay small, shrink on shapes and flags, and print readably.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from grader.puzzle_d.losses import ELEMENTWISE, IGNORE_INDEX, ROW_MAPS, ROW_REDUCTIONS, Recipe

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Problem:
    """One linear + loss problem: X (*lead, hidden), an nn.Linear (vocab x hidden), token labels (*lead)."""

    lead: tuple[int, ...]
    hidden: int
    vocab: int
    dtype: torch.dtype
    bias: bool
    ignore_fraction: float
    logit_scale: float
    seed: int

    @property
    def rows(self) -> int:
        """Rows of X once flattened to (-1, hidden)."""
        return math.prod(self.lead)

    def build(self, device: torch.device) -> tuple[torch.Tensor, torch.nn.Linear, torch.Tensor]:
        """X, the linear layer and the labels, reproducibly from `seed` (ignored labels are IGNORE_INDEX)."""
        g = torch.Generator().manual_seed(self.seed)
        X = torch.randn(*self.lead, self.hidden, generator=g)
        linear = torch.nn.Linear(self.hidden, self.vocab, bias=self.bias)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(self.vocab, self.hidden, generator=g) * self.logit_scale / self.hidden**0.5)
            if self.bias:
                linear.bias.copy_(torch.randn(self.vocab, generator=g))
        labels = torch.randint(0, self.vocab, self.lead, generator=g)
        labels[torch.rand(self.lead, generator=g) < self.ignore_fraction] = IGNORE_INDEX
        return X.to(device, self.dtype), linear.to(device, self.dtype), labels.to(device)

    def dense(self, device: torch.device, salt: int = 1) -> torch.Tensor:
        """A float32 tensor (*lead, vocab) for dense targets, reproducibly from `seed`."""
        g = torch.Generator().manual_seed(self.seed + salt)
        return torch.randn(*self.lead, self.vocab, generator=g).to(device)


@st.composite
def problems(draw: st.DrawFn, *, dtypes: tuple[torch.dtype, ...] = DTYPES, max_rows: int = 48,
             max_hidden: int = 48, max_vocab: int = 320, ignore: bool = True, bias: bool | None = None) -> Problem:
    """Problems with 1..max_rows rows in one or two leading dims, any hidden and vocab size up to the bounds; with
    or without bias (`bias` fixes it)."""
    if max_rows < 1 or max_hidden < 1 or max_vocab < 2:
        raise ValueError("problems: max_rows and max_hidden must be >= 1, max_vocab >= 2")
    rows = draw(st.integers(1, max_rows))
    lead = draw(st.sampled_from([(rows,)] + [(b, rows // b) for b in (2, 3, 4) if rows % b == 0]))
    return Problem(
        lead=lead,
        hidden=draw(st.integers(1, max_hidden)),
        vocab=draw(st.integers(2, max_vocab)),
        dtype=draw(st.sampled_from(dtypes)),
        bias=draw(st.booleans()) if bias is None else bias,
        ignore_fraction=draw(st.sampled_from([0.0, 0.25, 0.6, 1.0]) if ignore else st.just(0.0)),
        logit_scale=draw(st.sampled_from([1.0, 4.0])),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def chunk_sizes(rows: int) -> st.SearchStrategy[int | None]:
    """None, 1, any size up to a few past `rows` (divisors, non-divisors and larger than the rows)."""
    if rows < 1:
        raise ValueError("chunk_sizes: rows must be >= 1")
    return st.one_of(st.just(1), st.integers(1, rows + 3), st.none())


def problems_and_chunk_sizes(**bounds: object) -> st.SearchStrategy[tuple[Problem, int | None]]:
    """A problem (`bounds` as for `problems`) with a chunk size drawn for its rows."""
    return problems(**bounds).flatmap(lambda p: st.tuples(st.just(p), chunk_sizes(p.rows)))


def upstream_scales() -> st.SearchStrategy[float]:
    """The gradient arriving from above the loss: either sign, 1/8 to 8 in size."""
    return st.floats(0.125, 8.0) | st.floats(-8.0, -0.125)


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    """A random composed loss: 0-3 elementwise maps, 1-3 weighted row reductions, one map per row."""
    maps = tuple(draw(st.lists(st.sampled_from(sorted(ELEMENTWISE)), max_size=3)))
    reductions = draw(st.lists(
        st.tuples(st.sampled_from(sorted(ROW_REDUCTIONS)), st.sampled_from([-1.5, -0.5, 0.3, 1.0, 2.0])),
        min_size=1, max_size=3, unique_by=lambda r: r[0]))
    return Recipe(maps, tuple(reductions), draw(st.sampled_from(sorted(ROW_MAPS))))

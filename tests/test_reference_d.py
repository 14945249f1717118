"""D's reference on its fused path (torch.compile of the loss on given logits), forced onto the CPU.

The grader's Hypothesis problems are small, so they take the reference's eager path; the fused path runs on large
problems on a GPU (the H200 bench in BENCHMARKS.md checks its parity there). These tests hold it to the eager path
on a CPU, with Inductor's CPU backend: same loss and gradients for losses Liger-Kernel could not run, the chunks the
loss sees, and the fall back to the eager path for a loss that does not call the layer once on its chunk.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
import torch

import solutions.memory_efficient_linear as reference
from grader.puzzle_d.losses import CallLog, cross_entropy, grpo

V, H = 300, 32
ROWS = (2, 45)


@pytest.fixture
def fused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fused path taken on the CPU for any size; dynamo's caches emptied before and after."""
    monkeypatch.setattr(reference, "_FUSED_DEVICES", frozenset({"cpu"}))
    monkeypatch.setattr(reference, "_FUSE_MIN_LOGITS", 0)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def problem(dtype: torch.dtype, loss: str) -> tuple[torch.Tensor, torch.nn.Linear, torch.Tensor, Callable]:
    """X, a biased LM head, labels and the loss named `loss`, from a fixed seed."""
    g = torch.Generator().manual_seed(7)
    X = torch.randn(*ROWS, H, generator=g).to(dtype)
    linear = torch.nn.Linear(H, V, dtype=dtype)
    tokens = torch.randint(0, V, ROWS, generator=g)
    tokens[0, :4] = -100
    if loss == "grpo":
        batch = torch.stack([tokens.clamp_min(0).float(), torch.randn(ROWS, generator=g), -torch.rand(ROWS, generator=g),
                             -torch.rand(ROWS, generator=g), torch.ones(ROWS)], dim=-1)
        return X, linear, batch, grpo(batch)
    if loss == "ce softcap z-loss":
        return X, linear, tokens, cross_entropy(tokens, z_loss=1e-3, softcap=10.0)
    return X, linear, tokens, cross_entropy(tokens)


def fwd_bwd(X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor, loss_fn: Callable,
            chunk: int | None) -> tuple[torch.Tensor, ...]:
    """Loss, dX, dW and db of 3 x the reference's loss (an upstream gradient other than 1)."""
    X = X.detach().clone().requires_grad_(True)
    linear.zero_grad(set_to_none=True)
    loss = reference.memory_efficient_linear(X, linear, labels, loss_fn, chunk)
    (3 * loss).backward()
    return loss.detach(), X.grad, linear.weight.grad, linear.bias.grad


@pytest.mark.parametrize(("dtype", "loss"), [(torch.float32, "cross-entropy"), (torch.bfloat16, "cross-entropy"),
                                             (torch.bfloat16, "ce softcap z-loss"), (torch.bfloat16, "grpo")], ids=str)
def test_fused_path_matches_the_eager_path(fused, monkeypatch, dtype, loss):
    """The fused path's loss and gradients equal the eager path's within float32 reassociation (Inductor sums the
    vocabulary in another order), seen through 16-bit gradients' rounding: one 16-bit ulp of the largest element."""
    X, linear, labels, loss_fn = problem(dtype, loss)
    got = fwd_bwd(X, linear, labels, loss_fn, 16)
    monkeypatch.setattr(reference, "_FUSED_DEVICES", frozenset())
    want = fwd_bwd(X, linear, labels, loss_fn, 16)
    for name, a, b in zip(("loss", "dX", "dW", "db"), got, want):
        ulp = torch.finfo(dtype).eps if dtype != torch.float32 else 1e-5
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert (a.float() - b.float()).abs().max() <= ulp * b.float().abs().max(), name


def test_fused_path_hands_the_loss_chunks_of_the_chunk_size(fused):
    """The loss sees chunk_size rows per call (the last one the rest), upcast to float32 from the inputs' dtype."""
    X, linear, labels, loss_fn = problem(torch.bfloat16, "cross-entropy")
    loss_fn.log = CallLog()
    fwd_bwd(X, linear, labels, loss_fn, 32)
    assert loss_fn.log.rows == [32, 32, 26]
    assert set(loss_fn.log.linear_out_dtypes) == {torch.bfloat16} and set(loss_fn.log.loss_in_dtypes) == {torch.float32}


def test_loss_calling_the_layer_twice_falls_back_to_the_eager_path(fused):
    """A loss that calls the layer twice (here: on the chunk and on its double) cannot be given one chunk's logits;
    the reference notices on the first chunk and runs every chunk on its eager path, with the full-logit result."""
    X, linear, labels, _ = problem(torch.float32, "cross-entropy")
    calls: list[int] = []

    def twice(x: torch.Tensor, layer: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return (layer(x).float().logsumexp(-1) - 0.5 * layer(2 * x).float().mean(-1)).sum()

    got = fwd_bwd(X, linear, labels, twice, 32)
    assert calls == [32, 32, 32, 26], "the first chunk tried fused once, then every chunk eagerly"
    Xf = X.detach().clone().requires_grad_(True)
    linear.zero_grad(set_to_none=True)
    (3 * twice(Xf.reshape(-1, H), linear, labels.reshape(-1))).backward()
    want = (None, Xf.grad, linear.weight.grad, linear.bias.grad)
    for a, b in zip(got[1:], want[1:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_loss_that_fails_to_compile_runs_eagerly(fused, monkeypatch):
    """Compiling is an optimisation: when the compiled loss fails (as Inductor does without a C++ compiler, or in a
    box without a writable cache), the chunk runs on the eager path, with a warning, and gives the eager result."""
    X, linear, labels, loss_fn = problem(torch.float32, "cross-entropy")
    want = fwd_bwd(X, linear, labels, loss_fn, 32)

    def no_compiler(*args: object) -> None:
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(reference, "_compiled_loss_of_logits", lambda: no_compiler)
    with pytest.warns(RuntimeWarning, match="fused loss failed .*InvalidCxxCompiler"):
        got = fwd_bwd(X, linear, labels, loss_fn, 32)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_chunk_rows_fit_the_budget():
    """At the puzzle's vocabulary in bfloat16, a chunk's logits, their gradient and a float32 temporary (8 bytes per
    logit) fit the 1 GiB budget in 1024 rows, a multiple of the matmuls' 256-row tile."""
    weight = torch.empty(128256, 4096, dtype=torch.bfloat16, device="meta")
    rows = reference._fused_chunk_size(weight)
    assert rows == 1024 and rows * 128256 * 8 <= reference._FUSED_BUDGET_BYTES

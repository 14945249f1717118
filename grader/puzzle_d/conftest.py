"""Puzzle D fixtures: the entry point, numeric settings held fixed per test, and the parity judge."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest
import torch
from hypothesis import assume

from grader.measure.memory import MemoryPeak, cuda_peak, fake_tensor_peak
from grader.outcomes import not_measured
from grader.puzzle_d.oracles import (NATIVE_FACTOR, ForwardFunction, Result, cross_entropy, full_logit,
                                     gradients, grpo, natives, precision_report)


@pytest.fixture
def memory_efficient_linear(submission: Any) -> Callable[..., torch.Tensor]:
    """The submission's `memory_efficient_linear`, or a skip as "D not attempted"."""
    return submission.require("D")


@pytest.fixture(autouse=True)
def _exact_matmuls() -> Iterator[None]:
    """Full-precision float32 matmuls (no TF32) during each D test; the previous settings come back after."""
    precision = torch.get_float32_matmul_precision()
    cuda_tf32 = torch.backends.cuda.matmul.allow_tf32
    default_dtype = torch.get_default_dtype()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_float32_matmul_precision(precision)
    torch.backends.cuda.matmul.allow_tf32 = cuda_tf32
    torch.set_default_dtype(default_dtype)


def run_candidate(fn: Callable[..., torch.Tensor], X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor,
                  forward_function: ForwardFunction, chunk_size: int | None, upstream: float, *,
              candidate_forward: ForwardFunction | None = None) -> Result:
    """Call the submission on copies of the inputs, backpropagate `upstream`, collect loss and gradients."""
    lin = copy.deepcopy(linear)
    lin.zero_grad(set_to_none=True)
    x = X.detach().clone().requires_grad_(True)
    out = fn(x, lin, labels.clone(), forward_function, chunk_size)
    assert isinstance(out, torch.Tensor) and out.numel() == 1, (
        f"memory_efficient_linear must return a scalar tensor, got {type(out).__name__} "
        f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
    assert out.requires_grad, "the result does not require grad: no gradient can reach X, weight or bias"
    out.backward(torch.tensor(upstream, dtype=out.dtype, device=out.device))
    return Result(out.detach().reshape(()), gradients(x, lin))


@pytest.fixture
def judge(memory_efficient_linear: Callable[..., torch.Tensor], criterion_detail: Callable[..., None]
          ) -> Callable[..., Result]:
    """`judge(criterion, inputs, X, linear, labels, forward_function, chunk_size, upstream, *, candidate_forward)`.

    Runs the submission, the native versions (`oracles.natives`) and the float64 truth; raises
    AssertionError naming the criterion, the inputs and every tensor that breaks the precision rule
    (`oracles.precision_report`). Returns the candidate's result. The submission gets `candidate_forward` when
    given (the same loss with a `CallLog` attached, say), otherwise `forward_function`. The scorecard's detail
    keeps a running count of the problems judged and the largest share of the allowance any tensor used.
    """
    judged: list[float] = []
    dtypes: set[str] = set()

    def check(criterion: str, inputs: str, X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor,
              forward_function: ForwardFunction, chunk_size: int | None, upstream: float, *,
              candidate_forward: ForwardFunction | None = None) -> Result:
        truth = full_logit(X, linear, labels, forward_function, upstream, dtype=torch.float64)
        plain = natives(X, linear, labels, forward_function, upstream, chunk_size)
        # An example the dtype cannot hold natively (a 16-bit gradient overflowing) judges nothing: draw another.
        assume(all(bool(torch.isfinite(t).all()) for n in plain for t in (n.loss, *n.grads.values()) if t is not None))
        got = run_candidate(memory_efficient_linear, X, linear, labels, candidate_forward or forward_function,
                            chunk_size, upstream)
        checks = [precision_report(got.loss, [n.loss for n in plain], truth.loss, dtype=X.dtype, what="loss")]
        checks += [precision_report(got.grads[name], [n.grads[name] for n in plain], expected, dtype=X.dtype,
                                    what=f"d(upstream*loss)/d{name}") for name, expected in truth.grads.items()]
        reasons = [r for c in checks for r in c.reasons]
        assert not reasons, (f"D.{criterion}: result differs from the full-logit computation\n"
                             f"inputs: {inputs}, chunk_size={chunk_size}, upstream={upstream:g}\n" + "\n".join(reasons))
        judged.append(max(c.used for c in checks))
        dtypes.add(str(X.dtype).removeprefix("torch."))
        criterion_detail(f"{len(judged)} problem(s) ({', '.join(sorted(dtypes))}) match the float64 truth; the "
                         f"largest error used {max(judged):.2f} of the allowance ({NATIVE_FACTOR:g}x the plain "
                         "computation's error + margin)", replace=True)
        return got

    return check


# The puzzle's size: Llama-3 8B's LM head over bsz 4 x qlen 4096 tokens, in bfloat16.
PUZZLE_SHAPE = {"bsz": 4, "qlen": 4096, "hidden": 4096, "vocab": 128256}
PUZZLE_TEXT = "bsz 4, qlen 4096, hd 4096, vocab 128256, bf16, fwd+bwd"


@dataclass(frozen=True)
class MemoryComparison:
    """Peak memory of the submission and of the naive full-logit version on the same problem."""

    candidate: MemoryPeak
    naive: MemoryPeak

    @property
    def ratio(self) -> float:
        """Candidate peak over naive peak."""
        return self.candidate.peak_bytes / self.naive.peak_bytes

    def describe(self, what: str, where: str) -> str:
        """One line for the scorecard."""
        return (f"{what}, {where} at {PUZZLE_TEXT}: peak {self.candidate.peak_gib:.2f} GiB vs naive "
                f"{self.naive.peak_gib:.2f} GiB ({self.ratio:.2f}x) [{self.candidate.method}]")

    def assert_at_most_half(self, criterion: str, what: str, where: str) -> None:
        """Fail `D.<criterion>` unless the submission's peak is at most half the naive version's."""
        assert self.ratio <= 0.5, (
            f"D.{criterion}: {what}: peak {self.candidate.peak_gib:.2f} GiB is {self.ratio:.2f}x the naive "
            f"full-logit version's {self.naive.peak_gib:.2f} GiB ({where}); at most 0.5x is required")


def _puzzle_inputs(device: torch.device, loss: str) -> tuple[torch.Tensor, torch.nn.Linear, torch.Tensor, ForwardFunction]:
    """Puzzle-size X, LM head, labels and loss (`"ce"` or `"grpo"`); under FakeTensorMode nothing is allocated."""
    b, t, h, v = (PUZZLE_SHAPE[k] for k in ("bsz", "qlen", "hidden", "vocab"))
    X = torch.randn(b, t, h, dtype=torch.bfloat16, device=device).requires_grad_(True)
    linear = torch.nn.Linear(h, v, bias=False, dtype=torch.bfloat16, device=device)
    tokens = torch.randint(0, v, (b, t), device=device)
    if loss == "ce":
        return X, linear, tokens, cross_entropy(tokens, normaliser=float(b * t))
    batch = torch.stack([tokens.float(), torch.randn(b, t, device=device), torch.full((b, t), -5.0, device=device),
                         torch.full((b, t), -5.0, device=device), torch.ones(b, t, device=device)], dim=-1)
    return X, linear, batch, grpo(batch, normaliser=float(b * t))


def _naive(state: tuple) -> None:
    X, linear, labels, forward_function = state
    rows = X.reshape(-1, X.shape[-1])
    forward_function(rows, linear, labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])).backward()


@pytest.fixture
def puzzle_memory(memory_efficient_linear: Callable[..., torch.Tensor], device: torch.device
                  ) -> Callable[[str], tuple[MemoryComparison, str]]:
    """`puzzle_memory(loss)`: peaks of the submission (its own chunk size) and the naive version at puzzle size.

    On a GPU from the CUDA allocator; elsewhere from fake tensors (nothing allocated), and then not measured
    if the submission cannot run on fake tensors. Returns the comparison and where it was measured.
    """

    def measure(loss: str) -> tuple[MemoryComparison, str]:
        def candidate(state: tuple) -> None:
            memory_efficient_linear(*state).backward()

        if device.type == "cuda":
            setup = lambda: _puzzle_inputs(device, loss)  # noqa: E731
            return MemoryComparison(cuda_peak(setup, candidate), cuda_peak(setup, _naive)), \
                torch.cuda.get_device_name()
        setup = lambda: _puzzle_inputs(torch.device("cpu"), loss)  # noqa: E731
        naive = fake_tensor_peak(setup, _naive)
        try:
            peak = fake_tensor_peak(setup, candidate)
        except Exception as exc:  # an operator without a fake implementation, a data-dependent branch, ...
            not_measured(f"the submission could not run on fake tensors ({type(exc).__name__}: {exc}); "
                         "measure it on a GPU")
        return MemoryComparison(peak, naive), "fake-tensor estimate on CPU (kernel workspaces not counted)"

    return measure

"""Puzzle D's harness, the test side of a call: the submission run in its box on one problem (`run_candidate`),
and the parity check the value tests share (`Parity`): the truth and the natives computed here, the candidate
judged by `standard.judge`, a failure asserted under the criterion's name, and the running summary for the
scorecard."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
from hypothesis import assume

from grader.box import watchdog
from grader.box.client import Box
from grader.judging.box_calls import box_call
from grader.puzzle_d import standard
from grader.puzzle_d.losses import CallLog, CrossEntropy, ForwardFunction
from grader.puzzle_d.oracles import Result, full_logit


def run_candidate(box: Box, X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor,
                  forward_function: ForwardFunction, chunk_size: int | None, upstream: float, *, deadline: float,
                  keep: str | None = None) -> tuple[Result, dict[str, Any]]:
    """The submission in its box on copies of the inputs, backpropagating `upstream` (`grader.puzzle_d.tasks.run`):
    its result (loss, gradients, what its forward function received) and the call's facts. AssertionError when the
    submission raised or returned no scalar that requires grad; not measured where a CPU cannot decide
    (`grader.judging.box_calls.box_call`)."""
    got = box_call(box, "D.run", X, linear, labels, forward_function, chunk_size, upstream, keep=keep,
                   doing="calling memory_efficient_linear", deadline=deadline)
    return Result(got["loss"], got["grads"], CallLog(**got["log"])), got


_LOSS_NAMES = {"MeanSquaredError": "MSE", "KLToReference": "KL to a reference", "Composed": "composed",
               "GRPO": "GRPO"}


def loss_name(forward_function: ForwardFunction) -> str:
    """The loss a forward function computes, in a word or two (cross-entropy with its variants)."""
    if isinstance(forward_function, CrossEntropy):
        f = forward_function
        variants = [name for name, on in (("label smoothing", f.label_smoothing), ("z-loss", f.z_loss),
                                          ("softcap", f.softcap)) if on]
        return "cross-entropy" + (f" ({', '.join(variants)})" if variants else "")
    return _LOSS_NAMES.get(type(forward_function).__name__, type(forward_function).__name__)


class Parity:
    """The parity check of one test: runs the submission on problems, judges each by `standard.judge` and keeps a
    running summary, and per loss the largest share of the allowance used (`on_errors` receives them after each
    problem, for the HTML report)."""

    def __init__(self, box: Box, criterion: str, on_judged: Callable[[str], None] = lambda summary: None,
                 on_errors: Callable[[dict[str, dict[str, Any]]], None] = lambda errors: None):
        self._box, self._criterion, self._on_judged, self._on_errors = box, criterion, on_judged, on_errors
        self._errors: dict[str, dict[str, Any]] = {}
        self._used: list[float] = []
        self._dtypes: set[str] = set()

    def __call__(self, inputs: str, X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor,
                 forward_function: ForwardFunction, chunk_size: int | None, upstream: float) -> Result:
        """Judge the submission on one problem; AssertionError names the criterion, `inputs` and every bad tensor.

        Returns the candidate's result (with what its forward function received, `Result.log`).
        """
        where = f"inputs: {inputs}, chunk_size={chunk_size}, upstream={upstream:g}"
        start = time.perf_counter()
        truth = full_logit(X, linear, labels, forward_function, upstream, dtype=torch.float64)
        plain = standard.natives(X, linear, labels, forward_function, upstream, chunk_size)
        reference_s = time.perf_counter() - start
        # An example the dtype cannot hold natively (a 16-bit gradient overflowing) judges nothing: draw another.
        assume(all(bool(torch.isfinite(t).all()) for n in plain for t in (n.loss, *n.grads.values()) if t is not None))
        try:
            got, _ = run_candidate(self._box, X, linear, labels, forward_function, chunk_size, upstream,
                                   deadline=watchdog.deadline(X.device.type, reference_s))
        except AssertionError as exc:  # it names the criterion (`box_call`)
            self._note(forward_function, math.inf)
            raise AssertionError(f"{exc}\n{where}") from None
        verdict = standard.judge(got, truth, plain, X=X, linear=linear, labels=labels,
                                 forward_function=forward_function, upstream=upstream)
        self._note(forward_function, verdict.used)
        assert verdict.passed, (f"{self._criterion}: result differs from the full-logit computation\n{where}\n"
                                + verdict.message())
        self._used.append(verdict.used)
        self._dtypes.add(str(X.dtype).removeprefix("torch."))
        self._on_judged(self.summary())
        return got

    def _note(self, forward_function: ForwardFunction, used: float) -> None:
        errors = self._errors.setdefault(loss_name(forward_function), {"worst": 0.0, "problems": 0, "over": 0})
        errors["worst"] = max(errors["worst"], used)
        errors["problems"] += 1
        errors["over"] += used > 1
        self._on_errors(self._errors)

    def summary(self) -> str:
        """The problems judged so far and the largest share of the allowance any tensor used."""
        return (f"{len(self._used)} problem(s) ({', '.join(sorted(self._dtypes))}) match the float64 truth; the "
                f"largest error used {max(self._used, default=0.0):.2f} of the allowance ({standard.NATIVE_FACTOR:g}x "
                "the plain computation's error + rounding margins)")

"""Puzzle D's correctness standard, in one place: every D criterion that judges values judges them here, and each
judgement is a `grader.judging.verdict.Verdict` (the tests assert it under their criterion's name).

- Parity (`judge`, `precision_report`): a result and its gradients against the float64 truth, allowed
  `NATIVE_FACTOR` times the worst error of the plain computations in the inputs' dtype (`natives`),
  measured in the same run on the same problem, plus `MARGIN[dtype]` of the largest |truth|, plus for the
  tensors summed over chunks (loss, weight and bias gradients) what summing the submission's chunks may
  round (`Accumulation`).
- Gradient direction (`judge_directions`, for `hardcoded_gradients`): handed losses it cannot know, whether the
  submission's gradients follow each loss's own or cross-entropy's, over several problems without bias.
- Memory (`MemoryComparison.judge`): the submission's peak at most `HALF_OF_NAIVE` of the naive full-logit peak.
- Training (`compare_training`): a Llama trained through the submission against the stock one, by
  relative norms (`grader.judging.compare.relative_norm`) with the tolerances `LOSS_TOLERANCE`, `GRADIENT_TOLERANCE`,
  `WEIGHT_TOLERANCE`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from grader.judging.compare import mismatch_report, nonfinite_report, relative_norm, tensor_problems
from grader.judging.verdict import Verdict
from grader.measure.memory import MemoryPeak
from grader.puzzle_d.losses import ForwardFunction
from grader.puzzle_d.oracles import Result, full_logit
from grader.puzzle_d.training import TrainingRun

# ---- Parity with the full-logit computation --------------------------------------------------------------
#
# The rule, after Cut Cross-Entropy's tests (candidate error <= native error + margin), per tensor:
#     max|candidate - truth| <= NATIVE_FACTOR * max|native - truth| + MARGIN[dtype] * max|truth| + accumulation
# where truth is the float64 full-logit computation and "native" the worst of `natives()`, the plain
# computations in the inputs' dtype, all measured in the run on the judged problem; `Accumulation` derives
# the last term from rounding.
#
# NATIVE_FACTOR: a correct chunked result is one more realisation of the same roundings as the natives (the
# same operations, summed in another order and grouping), so its error is of the natives' size, not bounded
# by any one of them: two natives' errors alone differ by up to 550x on composed float32 losses whose terms
# cancel (measured over 1500 random problems), hence several natives and twice the worst of them.
NATIVE_FACTOR = 2.0
# MARGIN, a share of max|truth| for where every native happens to land closer to the truth than rounding
# guarantees (a lucky cancellation), so that a reordered sum may miss by a few roundings more:
# - 16-bit: 4 unit roundoffs (u = 2^-11 for float16, 2^-8 for bfloat16): the rounding of the result to its
#   dtype (1), of the logits' gradient before its matmul (1; a chunk's matmul may be blocked otherwise than
#   the full one: on an H100, cuBLAS's kernels for chunks under 1024 rows moved dX by 2 bfloat16 ulps of its
#   largest element, BENCHMARKS.md), of a scale by the upstream gradient afterwards (1), and one to spare.
#   The reference stays under 1x native + this over 1600 random problems.
# - float32: 2^-16 (256 unit roundoffs of 2^-24), measured: on composed losses whose terms cancel, a
#   reordered float32 sum loses ~100 unit roundoffs of max|truth|, and one tensor in ~5000 lands beyond
#   2x native + 4u. Still far below any fault the criteria catch: TF32 matmuls err by ~2^-11, bfloat16
#   logits by 2^-8, a dropped chunk or missing upstream factor by O(1).
MARGIN: dict[torch.dtype, float] = {
    torch.float32: 2.0**-16,
    torch.float16: 4 * 2.0**-11,
    torch.bfloat16: 4 * 2.0**-8,
}


def natives(X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor, forward_function: ForwardFunction,
            upstream: float, chunk_size: int | None) -> list[Result]:
    """The plain computations in the inputs' dtype whose errors are the parity rule's yardstick.

    Full logits with the upstream gradient applied before backward, and after it (multiplied in float32)
    where that is exact to one rounding: not in float16, whose small gradients underflow before a scale
    applied afterwards (a GradScaler loss scale) could save them. With a chunk size, also the same chunks
    summed in one autograd graph: summing 24 one-row chunks of a float32 bias gradient triples the error of
    one sum, which a correct chunked submission may do too.
    """
    orders = (False,) if X.dtype == torch.float16 else (False, True)
    out = [full_logit(X, linear, labels, forward_function, upstream, scale_after=after) for after in orders]
    if chunk_size is not None:
        out.append(full_logit(X, linear, labels, forward_function, upstream, chunk_size=chunk_size))
    return out


@dataclass(frozen=True)
class Accumulation:
    """What summing per-chunk results may round, beyond the natives' realisation of it.

    A tensor that is a sum over rows (the loss, the weight and bias gradients; not X's, whose rows each come
    from one chunk) is formed by a chunked submission as the sum of its `chunks` per-chunk results, each
    rounded to `dtype` and added to a running sum in `dtype`: by the recursive-summation bound (Higham,
    Accuracy and Stability of Numerical Algorithms, 4.2) that is off by at most `chunks` unit roundoffs of
    sum_k |chunk k's result| <= sum_r |row r's contribution| (`row_sum`, float64, per element). The natives
    realise one order of these roundings; another order, grouping, or accumulation in the tensor's dtype
    instead of float32 is as correct and may land anywhere within the bound (measured: 39 one-row float16
    bias chunks summed in chunk order err 3x more than autograd's sum of the same chunks). One chunk rounds
    as the full-logit native does, so the term is 0 then.
    """

    chunks: int  # the submission's chunks, counted from its calls of forward_function
    row_sum: float  # max over elements of sum_r |row r's float64 contribution|
    dtype: torch.dtype  # the tensor's own dtype, in which the sum is rounded

    @property
    def allowance(self) -> float:
        """chunks * u(dtype) * row_sum, or 0 for a single chunk."""
        return self.chunks * torch.finfo(self.dtype).eps / 2 * self.row_sum if self.chunks > 1 else 0.0


def row_sums(X: torch.Tensor, linear: torch.nn.Linear, labels: torch.Tensor, forward_function: ForwardFunction,
             upstream: float) -> dict[str, torch.Tensor]:
    """sum_r |row r's float64 contribution| to the loss and to the weight and bias gradients of `upstream * loss`.

    Each row's contribution is the forward function on that row alone (the grader's losses sum over rows,
    with their normaliser closed over), differentiated in float64.
    """
    lin = copy.deepcopy(linear).to(torch.float64)
    params = {"weight": lin.weight, **({"bias": lin.bias} if lin.bias is not None else {})}
    rows = X.detach().to(torch.float64).reshape(-1, X.shape[-1])
    targets = labels.reshape(rows.shape[0], *labels.shape[X.dim() - 1:])
    sums = {"loss": torch.zeros((), dtype=torch.float64, device=X.device),
            **{name: torch.zeros_like(p) for name, p in params.items()}}
    for r in range(rows.shape[0]):
        loss = forward_function(rows[r:r + 1], lin, targets[r:r + 1])
        sums["loss"] += loss.detach().abs()
        if not loss.requires_grad:
            continue
        for name, g in zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True)):
            if g is not None:
                sums[name] += (g * upstream).abs()
    return sums


def chunks_per_pass(rows_seen: list[int], rows: int) -> int:
    """Chunks per pass over `rows` rows, from the rows of every call of the forward function (a recompute in
    backward is a second pass), at most `rows`."""
    calls = [n for n in rows_seen if n]
    if not calls:
        return 1
    return max(1, min(rows, math.ceil(len(calls) * rows / sum(calls) - 1e-9)))


@dataclass(frozen=True)
class Precision:
    """One tensor judged by the parity rule: how much of the allowance its error used, and why it failed."""

    used: float  # max|actual - truth| / allowance; above 1 fails (inf: missing, malformed or NaN/Inf)
    reasons: list[str]


def precision_report(actual: torch.Tensor | None, native: list[torch.Tensor], truth: torch.Tensor, *,
                     dtype: torch.dtype, what: str, accumulation: Accumulation | None = None) -> Precision:
    """`actual` judged against the float64 `truth` and the `native` tensors by the parity rule.

    `dtype` is the inputs' (it picks the margin); `accumulation` adds its allowance for a tensor summed over
    chunks. Also checks presence, shape, dtype (that of the natives), and NaN/Inf where the truth is finite.
    """
    first = native[0]
    if actual is None:
        return Precision(math.inf, [f"{what}: no gradient arrived (expected one of shape {tuple(first.shape)})"])
    wrong = tensor_problems(actual, shape=first.shape, dtype=first.dtype, what=what)
    if wrong:
        return Precision(math.inf, wrong)
    a = actual.detach().double().reshape(-1).cpu()
    t = truth.detach().double().reshape(-1).cpu()
    nonfinite = nonfinite_report(a, t, what=what)  # on the float64 copies: its own conversions are then no-ops
    if nonfinite:
        return Precision(math.inf, [nonfinite])
    if a.numel() == 0:
        return Precision(0.0, [])
    native_err = max((n.detach().double().reshape(-1).cpu() - t).abs().nan_to_num(nan=math.inf).max().item()
                     for n in native)
    scale = t.abs().max().item()
    summed = 0.0 if accumulation is None else accumulation.allowance
    allowed = NATIVE_FACTOR * native_err + MARGIN[dtype] * scale + summed
    err = (a - t).abs()
    worst = int(err.argmax())
    used = err[worst].item() / allowed if allowed > 0 else (0.0 if err[worst].item() == 0 else math.inf)
    if used <= 1:
        return Precision(used, [])
    return Precision(used, [
        f"{what}: max error {err[worst].item():.3g} against the float64 truth exceeds {allowed:.3g} "
        f"({NATIVE_FACTOR:g} x the native {dtype} full-logit error {native_err:.3g} + {MARGIN[dtype]:.2g} x "
        f"max|truth| {scale:.3g}{_summing(accumulation)}); {int((err > allowed).sum())} of {a.numel()} elements over; worst at flat "
        f"index {worst}: got {a[worst].item():.6g}, truth {t[worst].item():.6g}"])


def _summing(accumulation: Accumulation | None) -> str:
    if accumulation is None or not accumulation.allowance:
        return ""
    return (f" + {accumulation.allowance:.3g} for summing {accumulation.chunks} chunks in "
            f"{str(accumulation.dtype).removeprefix('torch.')}")


def judge(got: Result, truth: Result, plain: list[Result], *, X: torch.Tensor, linear: torch.nn.Linear,
          labels: torch.Tensor, forward_function: ForwardFunction, upstream: float) -> Verdict:
    """The candidate's result on one problem (`got`: loss, gradients, what its forward function received) judged by
    the parity rule against the float64 `truth` and the natives `plain` (`natives`): the reason of every tensor
    that fails, and the largest share of the allowance any tensor used. The problem's inputs give, where a failure
    may be what summing the candidate's chunks rounds, each row's contribution (`row_sums`)."""
    tensors = {"loss": (got.loss, [n.loss for n in plain], truth.loss),
               **{name: (got.grads.get(name), [n.grads[name] for n in plain], expected)
                  for name, expected in truth.grads.items()}}
    chunks = chunks_per_pass(got.log.rows, math.prod(X.shape[:-1]))

    def judged(sums: dict[str, torch.Tensor]) -> list[Precision]:
        """Every tensor by the parity rule; those named in `sums` with their accumulation term."""
        return [precision_report(actual, native, expected, dtype=X.dtype,
                                 accumulation=Accumulation(chunks, sums[name].max().item(), native[0].dtype)
                                 if name in sums else None,
                                 what="loss" if name == "loss" else f"d(upstream*loss)/d{name}")
                for name, (actual, native, expected) in tensors.items()]

    checks = judged({})
    if chunks > 1 and any(c.reasons for c in checks):  # the accumulation term only adds: needed only then
        checks = judged(row_sums(X, linear, labels, forward_function, upstream))
    return Verdict([r for c in checks for r in c.reasons], used=max(c.used for c in checks))


# ---- Gradient direction: hardcoded_gradients ---------------------------------------------------------------
#
# Handed a loss it cannot know (a randomly composed one), a submission whose gradients autograd derives from
# forward_function points them along that loss's own gradient; one that ignores forward_function, or forms
# cross-entropy's gradients itself, points them along cross-entropy's. A problem's evidence is the |cosine| of the
# submission's X and weight gradients (together) with each float64 truth (`direction_fit`): a wrong scale, an
# ignored upstream gradient or averaged chunks leave it as it is, and the problems have no bias, so no bias fault
# can move it either (issue 34: a dropped bias turned one 1-wide problem's gradient to |cos| 0.887 with
# cross-entropy's against 0.707 with the loss's own).
#
# DIRECTION_DISTINCT: a problem gives evidence only when its two truths are at most 1 - DIRECTION_DISTINCT alike
# (|cos|); closer, a gradient of either kind fits both nearly as well.
DIRECTION_DISTINCT = 0.2
# DIRECTION_MARGIN: a problem's gradients follow one truth when they fit it better than the other by more than
# this: far above what 16-bit rounding turns a gradient by (bfloat16's unit roundoff is 2**-8, about 4e-3), far
# below what an exact gradient of either kind clears on a problem that counts (DIRECTION_DISTINCT).
DIRECTION_MARGIN = 0.05
# DIRECTION_AGREE: problems whose gradients must follow cross-entropy's, with none following the loss's, before
# the fault is named. A submission with the fault follows cross-entropy on every problem; a value fault can turn
# one problem's gradient towards it by chance: the dropped bias of tests/broken/d_head_without_bias.py did on 14
# of 233 and 4 of 229 problems with bias that count, in two runs of 400 of this test's draws (2-6%; on 0 of 172
# without bias), so three agreeing by chance is at most about 0.06**3 = 2e-4, and one problem that follows the
# loss clears the submission.
DIRECTION_AGREE = 3


def direction_fit(a: torch.Tensor, b: torch.Tensor) -> float:
    """|cos(a, b)| of two flat tensors, 0 when either is zero."""
    den = float(a.norm() * b.norm())
    return abs(float(a @ b)) / den if den else 0.0


@dataclass(frozen=True)
class Direction:
    """One problem's evidence for `hardcoded_gradients`: how well the submission's gradients fit the loss's own and
    cross-entropy's (`direction_fit`), and how it called the forward function (`losses.CallLog`)."""

    where: str
    to_loss: float
    to_ce: float
    calls: int  # forward_function calls
    recorded: int  # of them, calls autograd recorded (logits requiring grad)

    @property
    def follows(self) -> str | None:
        """"cross-entropy" or "loss": the truth the gradients fit better by more than DIRECTION_MARGIN; else None."""
        if self.to_ce > self.to_loss + DIRECTION_MARGIN:
            return "cross-entropy"
        if self.to_loss > self.to_ce + DIRECTION_MARGIN:
            return "loss"
        return None


def _following(readings: list[Direction], truth: str) -> list[Direction]:
    return [r for r in readings if r.follows == truth]


def undecided_direction(readings: list[Direction], unseen: list[str]) -> str | None:
    """Why these problems cannot decide `hardcoded_gradients` (`unseen`: why other problems gave no evidence), or
    None when `judge_directions` can."""
    ce, loss = _following(readings, "cross-entropy"), _following(readings, "loss")
    if ce and loss:
        return (f"the problems disagree: the gradients followed cross-entropy's in {len(ce)} ({ce[0].where}) and the "
                f"loss's own in {len(loss)} ({loss[0].where}); gradients formed for cross-entropy follow it in every "
                "one")
    if ce and len(ce) < DIRECTION_AGREE:
        return (f"the gradients followed cross-entropy's in only {len(ce)} problem(s) ({ce[0].where}) and the loss's "
                f"own in none: fewer than the {DIRECTION_AGREE} that name the fault")
    if not ce and not loss:
        if readings:
            return (f"in {len(readings)} problem(s) the gradients followed neither the loss's own nor cross-entropy's "
                    f"by more than {DIRECTION_MARGIN:g} in |cos| ({readings[0].where})")
        return ("no example showed the gradients of a loss other than cross-entropy: "
                + (unseen[0] if unseen else "every drawn loss's gradients pointed like cross-entropy's"))
    return None


def _cause(ce: list[Direction]) -> str:
    """What the forward function's calls show about gradients that follow cross-entropy."""
    if all(r.calls == 0 for r in ce):
        return "it ignores forward_function: it never called it"
    if all(r.recorded == 0 for r in ce):
        return ("gradients written for cross-entropy: forward_function was called only with autograd off, for its "
                "value, so no gradient came from it")
    return "forward_function ignored or gradients written for cross-entropy"


def judge_directions(readings: list[Direction], unseen: list[str]) -> Verdict:
    """`hardcoded_gradients` on problems that decide it (`undecided_direction` is None): failed when the gradients
    follow cross-entropy's, passed when they follow the loss's own."""
    ce, loss = _following(readings, "cross-entropy"), _following(readings, "loss")
    others = len(readings) - len(ce) - len(loss)
    rest = (f"; {others} followed neither by {DIRECTION_MARGIN:g}" if others else "") + (
        f"; {len(unseen)} gave no evidence" if unseen else "")
    if ce:
        summary = (f"in {len(ce)} problem(s) without bias, handed a loss that is not cross-entropy, the submission's "
                   f"gradients point along cross-entropy's (|cos| {min(r.to_ce for r in ce):.3f} to "
                   f"{max(r.to_ce for r in ce):.3f}) rather than the loss's own (|cos| at most "
                   f"{max(r.to_loss for r in ce):.3f}), in none along the loss's{rest}")
        return Verdict([f"the gradients follow cross-entropy, not the loss handed in ({_cause(ce)}): {summary}; "
                        f"e.g. {ce[0].where}"], summary)
    return Verdict([], f"in {len(loss)} problem(s) without bias with a composed loss, the gradients followed the loss "
                       f"(|cos| with its own at least {min(r.to_loss for r in loss):.3f}, with cross-entropy's at most "
                       f"{max(r.to_ce for r in loss):.3f}) and in none cross-entropy{rest}")


# ---- Memory ----------------------------------------------------------------------------------------------

# The puzzle's bar: "VRAM 50% reduction" against the naive full-logit version on the same problem.
HALF_OF_NAIVE = 0.5


@dataclass(frozen=True)
class MemoryComparison:
    """Peak memory of the submission and of the naive full-logit version on the same `problem`."""

    candidate: MemoryPeak
    naive: MemoryPeak
    problem: str

    @property
    def ratio(self) -> float:
        """Candidate peak over naive peak."""
        return self.candidate.peak_bytes / self.naive.peak_bytes

    def judge(self, what: str, where: str) -> Verdict:
        """The submission's peak on `what` (a loss) measured `where`, at most `HALF_OF_NAIVE` of the naive version's:
        a line for the scorecard, the ratio over that limit, and the peaks as data for the HTML report."""
        summary = (f"{what}, {where} at {self.problem}: peak {self.candidate.peak_gib:.2f} GiB vs naive "
                   f"{self.naive.peak_gib:.2f} GiB ({self.ratio:.2f}x) [{self.candidate.method}]")
        failures = [] if self.ratio <= HALF_OF_NAIVE else [
            f"{what}: peak {self.candidate.peak_gib:.2f} GiB is {self.ratio:.2f}x the naive full-logit version's "
            f"{self.naive.peak_gib:.2f} GiB ({where}); at most {HALF_OF_NAIVE:g}x is required"]
        data = {"candidate_bytes": self.candidate.peak_bytes, "naive_bytes": self.naive.peak_bytes,
                "retained_bytes": self.candidate.retained_bytes, "limit": HALF_OF_NAIVE, "method": self.candidate.method,
                "where": where, "problem": self.problem}
        return Verdict(failures, summary, self.ratio / HALF_OF_NAIVE, data)


# ---- Training a Llama ------------------------------------------------------------------------------------
#
# Both models start from the same weights and take the same AdamW steps in float32 (TF32 off), so a correct
# submission differs from stock only by the order of float32 sums (chunks instead of one matmul). Not
# elementwise: AdamW turns noise in near-zero gradients into lr-sized steps; on an H100 the summation-order
# noise of two correct runs left 109k of the 262M embedding elements up to 4e-3 apart after 5 steps.
# Measured on an H100 for the reference at Llama-3.2-1B size (BENCHMARKS.md): losses equal to 5 decimals,
# first-step gradients 4.4e-6 and final weights 1.3e-3 of stock (relative norms below); each tolerance sits
# above that, and far below a fault (averaged chunks move the loss by O(1), a lost gradient by 100%).
# Per-step losses, atol and rtol: 1e-4 (the losses, near 12, agreed to 1e-5).
LOSS_TOLERANCE = 1e-4
# First-step gradient of every parameter, relative norm: 1e-4 (measured 4.4e-6). Gradients are compared at
# all because AdamW's normalised step would hide a gradient off by a constant factor.
GRADIENT_TOLERANCE = 1e-4
# Final weights, relative to the distance training moved them: 1e-2 (measured 1.3e-3, the AdamW amplification).
WEIGHT_TOLERANCE = 1e-2


def compare_training(ours: TrainingRun, stock: TrainingRun, initial: list[torch.Tensor], names: list[str], *,
                     model: str, steps: int) -> Verdict:
    """Judge `ours` against `stock` (both from `initial`): losses, first-step gradients, final weights. The summary
    and `data` hold the worst relative differences of the gradients and the final weights."""
    reasons = mismatch_report(torch.tensor(ours.losses), torch.tensor(stock.losses), atol=LOSS_TOLERANCE,
                              rtol=LOSS_TOLERANCE, what=f"per-step training loss ({model})")
    grads = [relative_norm(g, e, e) for g, e in zip(ours.first_grads, stock.first_grads)]
    weights = [relative_norm(p, q, q - w) for p, q, w in zip(ours.final, stock.final, initial)]
    reasons += [f"first-step gradient of {n} differs from stock by {err:.2e} of its norm "
                f"(at most {GRADIENT_TOLERANCE:g}) ({model})" for n, err in zip(names, grads) if err > GRADIENT_TOLERANCE]
    reasons += [f"after {steps} steps {n} differs from stock by {err:.2e} of the distance training "
                f"moved it (at most {WEIGHT_TOLERANCE:g}) ({model})" for n, err in zip(names, weights)
                if err > WEIGHT_TOLERANCE]
    worst = {"gradient_error": max(grads, default=0.0), "weight_error": max(weights, default=0.0)}
    summary = (f"worst relative difference: first-step gradient {worst['gradient_error']:.1e}, final weights "
               f"{worst['weight_error']:.1e} of the distance trained")
    return Verdict(reasons, summary, data=worst)

"""Puzzle C's correctness standard: what `correct` compares with the eager oracle, and how close is close enough.

Every run after the oracle follows the oracle's trajectory (`training.train(follow=...)`): at each optimizer
step it computes its losses and LoRA gradients at exactly the weights the oracle had at that step, so each
step is compared as a first step would be, with no AdamW update in between to amplify rounding (AdamW's
first updates are lr*sign(gradient): two valid runs that train on their own end 0.37 of the update's norm
apart on a GPU, which hides any LoRA fault). Compared, at every step of the schedule (every length, the
batch-size change, both accumulated micro-batches):

- `loss`: each micro-batch's loss, relative to the oracle's.
- `gradient scale`: for each LoRA weight, the accumulated gradient g against the oracle's o as
  <g - o, o> / <o, o>: the relative error along the oracle's own direction. LoRA's output is
  scaling * B(A(x)), so an adapter's gradients are linear in its own scaling (an adapter switched off shows
  -1 on its two weights); a change to every adapter also changes what each layer feeds the next, so it moves
  the gradients by more than itself: a scaling x0.9 everywhere measured -0.23 on the CPU's 2-layer model and
  -0.68 on the 16-layer one graded on a GPU (BENCHMARKS.md). Rounding noise is spread over all directions, so
  its projection on the gradient is small: this is the sharp test.
- `gradient error`: ||g - o|| / ||o||, the whole relative difference in any direction (a wrong mask, a
  wrong activation, an adapter fed the wrong input).

Each tolerance is NOISE_FACTOR times the largest value of that quantity between two valid eager
computations of the same steps, measured in the same run (sdpa vs math attention, neither compiled), and
never below ROUNDING.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from grader.judging.compare import scale_and_error
from grader.judging.verdict import Verdict
from grader.puzzle_c.training import TrainRecord

# An honest candidate is one more valid bf16 computation of the same steps, so its distance from the oracle
# is of the floor's size. Measured on CPU (tiny Llama, four seeds): the reference and the corpus' good C
# submissions at 0.73-1.25x the floor on gradient scale, 1.01-1.10x on gradient error and 0.74-1.76x on the
# loss (12 micro-batches give a rougher maximum than 168 gradients). 3x leaves room for a candidate that
# rounds in other places than eager does (inductor fuses and keeps float32 intermediates), and stays far
# below what a LoRA fault does: a scaling x0.9 measured gradient scale 0.21-0.24 against floors of 1.9-3.1e-3.
NOISE_FACTOR = 3.0
# One bf16 rounding moves a value by eps/4 relative on average (eps/2 at most): no comparison asks for
# less, or a floor run that happened to round like the oracle would demand bit-equality of the candidate.
ROUNDING = torch.finfo(torch.bfloat16).eps / 4
FLOOR = "eager sdpa vs eager math attention at the same weights"
# quantity -> how a failure states what differed (completed with the tolerance and the count)
QUANTITIES = {
    "loss": "per-micro-batch losses differ from the eager oracle's at the same weights by more than {tol} "
            "(relative)",
    "gradient scale": "LoRA gradients are scaled differently from the eager oracle's at the same weights: their "
                      "component along the oracle's gradient differs from it by more than {tol} (relative)",
    "gradient error": "LoRA gradients differ from the eager oracle's at the same weights by more than {tol} of "
                      "the oracle's norm",
}
_SHOW = 6  # offenders listed per quantity


@dataclass(frozen=True)
class Gap:
    """One compared value of a run against the oracle's: its quantity, where, the relative difference."""

    quantity: str
    where: str
    value: float  # signed for loss and gradient scale (run minus oracle, relative), >= 0 for gradient error
    note: str = ""  # "no gradient" or "non-finite gradient"

    @property
    def size(self) -> float:
        """|value|, with NaN counted as infinitely large."""
        return math.inf if math.isnan(self.value) else abs(self.value)

    def __str__(self) -> str:
        value = f"{self.value:.3g}" if self.quantity == "gradient error" else f"{self.value:+.3g}"
        return f"{self.where}: {self.note} ({value})" if self.note else f"{self.where}: {value}"


def gaps(run: TrainRecord, oracle: TrainRecord) -> list[Gap]:
    """Every loss and LoRA-gradient gap of `run` from `oracle`, over the steps both completed."""
    found = []
    for ours, theirs in zip(run.micro, oracle.micro):
        where = f"step {ours.step}, micro-batch {ours.batch}x{ours.length}"
        found.append(Gap("loss", where, (ours.loss - theirs.loss) / abs(theirs.loss)))
    for step, (ours, theirs) in enumerate(zip(run.step_grads, oracle.step_grads)):
        for name, want in theirs.items():
            if name in ours:
                found.extend(_gradient_gaps(f"step {step}, {_short(name)}", ours[name], want))
    return found


def _gradient_gaps(where: str, got: torch.Tensor | None, want: torch.Tensor | None) -> list[Gap]:
    if want is None:
        raise RuntimeError(f"the eager oracle has no gradient at {where}: the grader's model is not as built")
    if got is None:
        return [Gap("gradient scale", where, -1.0, "no gradient"), Gap("gradient error", where, 1.0, "no gradient")]
    if not torch.isfinite(got).all():
        return [Gap(q, where, math.nan, "non-finite gradient") for q in ("gradient scale", "gradient error")]
    scale, error = scale_and_error(got, want)
    return [Gap("gradient scale", where, scale), Gap("gradient error", where, error)]


def _without_gradient(found: list[Gap]) -> str:
    """The failure naming LoRA weights that got no gradient, or a non-finite one: stated first, because their size
    in the measures (-1 and 1 for a missing gradient) says nothing, and a fault elsewhere can move other weights'
    gradients further (on the GPU an adapter left out moved every other gradient by 1.0 to 1.9 of its norm)."""
    noted = [g for g in found if g.note and g.quantity == "gradient error"]
    if not noted:
        return ""
    listing = "\n".join(f"  {g.where}: {g.note}" for g in noted[:_SHOW])
    more = f"\n  ... {len(noted) - _SHOW} more" if len(noted) > _SHOW else ""
    pairs = sum(g.quantity == "gradient error" for g in found)
    return (f"C.correct: LoRA weights without a usable gradient where the eager oracle has one, in {len(noted)} of "
            f"{pairs} (step, LoRA weight) pairs:\n{listing}{more}")


def _short(name: str) -> str:
    match = re.search(r"layers\.\d+\.\w+\.\w+\.lora_[AB]", name)
    return match.group(0) if match else name


def largest(found: list[Gap], quantity: str) -> Gap:
    """The largest gap of one quantity."""
    return max((g for g in found if g.quantity == quantity), key=lambda g: g.size)


def per_step(found: list[Gap], quantity: str) -> list[dict[str, Any]]:
    """For the HTML report: each micro-batch's loss gap, or each step's largest gradient gap, in the run's order."""
    if quantity == "loss":
        return [{"at": g.where, "value": g.value, "where": g.where} for g in found if g.quantity == quantity]
    worst: dict[str, Gap] = {}
    for g in (g for g in found if g.quantity == quantity):
        step = g.where.split(",")[0]
        if step not in worst or g.size > worst[step].size:
            worst[step] = g
    return [{"at": step, "value": g.value, "where": g.where} for step, g in worst.items()]


def judge(run: TrainRecord, oracle: TrainRecord, floor_run: TrainRecord) -> Verdict:
    """Compare `run` with `oracle`, each quantity within NOISE_FACTOR x the floor run's largest gap (>= ROUNDING):
    the figures behind it, the largest gap over its tolerance (`used`), the failures, and per quantity its floor,
    tolerance and the run's and the floor run's gaps along the steps (`data`)."""
    floor_gaps, run_gaps = gaps(floor_run, oracle), gaps(run, oracle)
    floor = {q: largest(floor_gaps, q).size for q in QUANTITIES}
    tolerance = {q: max(NOISE_FACTOR * floor[q], ROUNDING) for q in QUANTITIES}
    worst = {q: largest(run_gaps, q) for q in QUANTITIES}
    summary = (f"noise floor ({FLOOR}): " + ", ".join(f"{q} {floor[q]:.2g}" for q in QUANTITIES)
               + f"; tolerances ({NOISE_FACTOR:g}x the floor, at least {ROUNDING:.2g}): "
               + ", ".join(f"{tolerance[q]:.2g}" for q in QUANTITIES)
               + "; compiled, largest: " + "; ".join(f"{q} {worst[q]}" for q in QUANTITIES))
    missing = _without_gradient(run_gaps)
    failures = [missing] if missing else []
    for q in QUANTITIES:
        beyond = sorted((g for g in run_gaps if g.quantity == q and not g.size <= tolerance[q]),
                        key=lambda g: -g.size)
        if beyond:
            listing = "\n".join(f"  {g}" for g in beyond[:_SHOW])
            more = f"\n  ... {len(beyond) - _SHOW} more" if len(beyond) > _SHOW else ""
            what = QUANTITIES[q].format(tol=f"{tolerance[q]:.2g}")
            unit = "micro-batches" if q == "loss" else "(step, LoRA weight) pairs"
            failures.append(f"C.correct: {what}, {NOISE_FACTOR:g}x the {floor[q]:.2g} between two valid eager "
                            f"computations, in {len(beyond)} of {sum(g.quantity == q for g in run_gaps)} {unit}:\n"
                            f"{listing}{more}")
    used = max(worst[q].size / tolerance[q] for q in QUANTITIES)
    data = {q: {"floor": floor[q], "tolerance": tolerance[q], "run": per_step(run_gaps, q),
                "floor_run": per_step(floor_gaps, q)} for q in QUANTITIES}
    return Verdict(failures, summary, used, data)


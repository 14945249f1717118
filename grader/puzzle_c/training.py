"""The training run every copy goes through: gradient accumulation the way transformers' Trainer does it,
autocast to the compute dtype, and between optimizer steps either AdamW (the oracle's own training) or the
oracle's weights copied in (every other run follows the oracle's trajectory).

Each micro-batch's loss is the summed token loss divided by the number of label tokens in the whole
accumulated step (`num_items_in_batch`, passed as a tensor as the Trainer does), so the step's loss is
the sum of its micro-batch losses. The eager run of this function is the oracle; the compiled copy runs
the very same code.

Following the oracle, a run computes every step's losses and LoRA gradients at exactly the weights the
oracle had at that step, so they can be compared with the oracle's at the precision of one step:
training with its own AdamW would amplify rounding differences in the gradients into different weights
(AdamW's first updates are lr*sign(gradient)), and the runs would drift apart by more than any LoRA fault.
The weights are written in place under `no_grad`, as an optimizer writes them.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from grader.puzzle_c.builders import Schedule

log = logging.getLogger(__name__)  # one line per micro-batch: follow a long GPU run with --log-cli-level=INFO

LEARNING_RATE = 1e-3  # larger than the notebook's 2e-4 so that a few steps move the adapters measurably


@dataclass
class MicroStep:
    """What one micro-batch did: its shape, its loss, the compilations it triggered, its wall time."""

    step: int
    batch: int
    length: int
    loss: float
    compilations: int
    seconds: float


@dataclass(repr=False)
class TrainRecord:
    """Per-step losses, per-micro-batch log, timings, peak memory; with `keep`, per-step weights and gradients.

    `step_grads[k]` holds the trainable weights' gradients accumulated over step k (None for a weight that
    received none) and, for a run with its own optimizer, `step_weights[k]` the weights at the start of
    step k; both by canonical name, on the CPU.
    """

    losses: list[float] = field(default_factory=list)
    micro: list[MicroStep] = field(default_factory=list)
    step_weights: list[dict[str, torch.Tensor]] = field(default_factory=list)
    step_grads: list[dict[str, torch.Tensor | None]] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    peak_bytes: int | None = None

    def __repr__(self) -> str:
        """A summary, not the tensors: pytest shows a failing test's arguments with repr(), which formatted every
        kept weight and gradient (1,792 tensors a record on the GPU's model)."""
        kept = sum(len(step) for step in (*self.step_weights, *self.step_grads))
        return (f"TrainRecord({len(self.losses)} steps, {len(self.micro)} micro-batches, {kept} weights and gradients "
                f"kept, peak_bytes={self.peak_bytes})")

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TrainRecord:
        """A record from the plain data a box's reply carries (`grader.box.wire.plain` of a TrainRecord)."""
        return cls([float(x) for x in data["losses"]], [MicroStep(**m) for m in data["micro"]],
                   list(data["step_weights"]), list(data["step_grads"]), [float(x) for x in data["step_seconds"]],
                   data["peak_bytes"])

    def _compiling_steps(self) -> set[int]:
        return {m.step for m in self.micro if m.compilations}

    def steady_step_seconds(self) -> float:
        """Median time of the steps that compiled nothing (warm-up excluded)."""
        compiling = self._compiling_steps()
        quiet = [t for i, t in enumerate(self.step_seconds) if i > 0 and i not in compiling]
        return statistics.median(quiet or self.step_seconds[-1:])

    def compile_overhead_seconds(self) -> float:
        """Time the compiling steps spent beyond a steady step: the run's compile cost."""
        steady, compiling = self.steady_step_seconds(), self._compiling_steps()
        return sum(max(0.0, t - steady) for i, t in enumerate(self.step_seconds) if i in compiling)


def canonical_names(module: torch.nn.Module) -> dict[int, str]:
    """id(parameter) -> name, for the model as the grader built it (before a submission wraps it)."""
    return {id(p): name for name, p in module.named_parameters()}


def trainable_weights(module: torch.nn.Module, names: dict[int, str] | None = None) -> dict[str, torch.Tensor]:
    """Trainable parameters by canonical name: the grader's own name for a parameter it built (`names`),
    else the module's name with wrapper prefixes (`_orig_mod.`) removed."""
    return {names.get(id(p)) if names and id(p) in names else re.sub(r"(^|\.)_orig_mod\.", r"\1", name): p
            for name, p in module.named_parameters() if p.requires_grad}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _to_cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().to("cpu", copy=True)


def train(module: torch.nn.Module, schedule: Schedule, *, dtype: torch.dtype, device: torch.device,
          record: TrainRecord | None = None, compilations: Callable[[], int] = lambda: 0,
          names: dict[int, str] | None = None, keep: bool = False, follow: TrainRecord | None = None) -> TrainRecord:
    """Train `module` over `schedule`; fills `record` as it goes (so a crash leaves what was measured).

    `compilations()` counts graphs compiled so far; each micro-batch logs how many it added. `names` maps
    the grader's parameters to their canonical names (`canonical_names`). With `keep`, every step's
    gradients are recorded (and weights, without `follow`). With `follow` (a record kept by the oracle),
    each step starts from the oracle's weights at that step instead of this run's own AdamW update.
    """
    record = record if record is not None else TrainRecord()
    params = trainable_weights(module, names)
    optimizer = torch.optim.AdamW(list(params.values()), lr=LEARNING_RATE) if follow is None else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    module.train()
    for step, micro_batches in enumerate(schedule.steps):
        # Not timed, here and below: the copies are the grader's, not the step's.
        if keep and follow is None:  # a following run's weights are the oracle's by construction
            record.step_weights.append({name: _to_cpu(p) for name, p in params.items()})
        if follow is not None:
            with torch.no_grad():
                for name, weight in follow.step_weights[step].items():
                    if name in params:  # a missing name fails `correct`, not the run
                        params[name].copy_(weight)
        _sync(device)
        start = time.perf_counter()
        items = sum(int((mb.labels[:, 1:] != -100).sum()) for mb in micro_batches)
        num_items = torch.tensor(items, device=device)
        total = torch.zeros((), device=device)
        for mb in micro_batches:
            before, t0 = compilations(), time.perf_counter()
            with torch.autocast(device.type, dtype=dtype):
                out = module(input_ids=mb.input_ids, attention_mask=mb.attention_mask, labels=mb.labels,
                             num_items_in_batch=num_items)
            out.loss.backward()
            loss = out.loss.detach().float()
            total += loss
            _sync(device)
            record.micro.append(MicroStep(step, *mb.shape, float(loss), compilations() - before,
                                          time.perf_counter() - t0))
            log.info("%s", record.micro[-1])
        forward_backward = time.perf_counter() - start
        if keep:  # not timed: the copies are the grader's
            record.step_grads.append({name: _to_cpu(p.grad) for name, p in params.items()})
        update = time.perf_counter()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            for p in params.values():
                p.grad = None
        record.losses.append(float(total))
        _sync(device)
        record.step_seconds.append(forward_backward + time.perf_counter() - update)
    if device.type == "cuda":
        record.peak_bytes = torch.cuda.max_memory_allocated(device)
    return record

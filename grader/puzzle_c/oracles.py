"""The training run both copies go through: AdamW over the trainable (LoRA) weights, gradient
accumulation the way transformers' Trainer does it, autocast to the compute dtype.

Each micro-batch's loss is the summed token loss divided by the number of label tokens in the whole
accumulated step (`num_items_in_batch`, passed as a tensor as the Trainer does), so the step's loss is
the sum of its micro-batch losses. The eager run of this function is the oracle; the compiled copy runs
the very same code.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from grader.puzzle_c.builders import Schedule

log = logging.getLogger(__name__)  # one line per micro-batch: follow a long GPU run with --log-cli-level=INFO

LEARNING_RATE = 1e-3  # larger than the notebook's 2e-4 so that a few steps move the adapters measurably


@dataclass
class MicroStep:
    """What one micro-batch did: its shape, the compilations it triggered, its wall time."""

    step: int
    batch: int
    length: int
    compilations: int
    seconds: float


@dataclass
class TrainRecord:
    """Per-step losses, final trainable weights by name, per-micro-batch log, timings, peak memory."""

    losses: list[float] = field(default_factory=list)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    initial_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    micro: list[MicroStep] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    peak_bytes: int | None = None

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


def trainable_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name, with wrapper prefixes (`_orig_mod.`) removed."""
    return {re.sub(r"(^|\.)_orig_mod\.", r"\1", name): p for name, p in module.named_parameters() if p.requires_grad}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(module: torch.nn.Module, schedule: Schedule, *, dtype: torch.dtype, device: torch.device,
          record: TrainRecord | None = None, compilations: Callable[[], int] = lambda: 0) -> TrainRecord:
    """Train `module` over `schedule`; fills `record` as it goes (so a crash leaves what was measured).

    `compilations()` counts graphs compiled so far; each micro-batch logs how many it added.
    """
    record = record if record is not None else TrainRecord()
    params = trainable_weights(module)
    record.initial_weights = {k: v.detach().clone() for k, v in params.items()}
    optimizer = torch.optim.AdamW(list(params.values()), lr=LEARNING_RATE)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    module.train()
    for step, micro_batches in enumerate(schedule.steps):
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
            total += out.loss.detach().float()
            _sync(device)
            record.micro.append(MicroStep(step, *mb.shape, compilations() - before, time.perf_counter() - t0))
            log.info("%s", record.micro[-1])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        record.losses.append(float(total))
        _sync(device)
        record.step_seconds.append(time.perf_counter() - start)
    if device.type == "cuda":
        record.peak_bytes = torch.cuda.max_memory_allocated(device)
    record.weights = {k: v.detach().clone() for k, v in params.items()}
    return record


def loss_rel_diff(a: TrainRecord, b: TrainRecord) -> float:
    """Largest per-step relative loss difference of run `a` from run `b`."""
    return max(abs(x - y) / abs(y) for x, y in zip(a.losses, b.losses))


def update_rel_diff(a: TrainRecord, b: TrainRecord) -> float:
    """Norm of the difference of the two runs' LoRA updates (final - initial), over the norm of `b`'s update."""
    diff = math.sqrt(sum(float(((a.weights[k] - a.initial_weights[k]).double()
                                - (b.weights[k] - b.initial_weights[k]).double()).norm()) ** 2 for k in b.weights))
    ref = math.sqrt(sum(float((b.weights[k] - b.initial_weights[k]).double().norm()) ** 2 for k in b.weights))
    return diff / ref

"""Puzzle C's training runs, done once per session: what every C test reads.

With `correct` selected, the QLoRA Llama is built from the run's seed and trained eagerly with AdamW (sdpa
attention: the oracle, keeping every step's weights and gradients), then built again and run eagerly along
the oracle's trajectory with math attention (the noise floor: another valid rounding of the same steps), both
here in the judge. Last, in the submission's box, a fresh copy goes to its `compile_qlora`, and what comes back is
trained under `grader.measure.dynamo.record()`, along the oracle's trajectory when there is one
(`grader.puzzle_c.tasks`). A crash is kept, not raised: every test that judges the run then fails, one of them
with the crash (`CRun.crash_holder`), the others pointing to it.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grader.llama import LLAMA_3_2_1B, TINY_QLORA, ModelSpec
from grader.puzzle_c.builders import Schedule, build_qlora_model, make_schedule

if TYPE_CHECKING:  # torch and the measurement modules stay unimported until a C run needs them
    import torch

    from grader.box.client import Box
    from grader.judging.progress import Progress
    from grader.measure.dynamo import DynamoReport
    from grader.puzzle_c.training import TrainRecord

# (batch, padded length) per micro-batch, two micro-batches per optimizer step. Every run sees more
# distinct lengths than dynamo's default recompile limit (8), and a batch-size change at a length seen
# before (so that it is not mistaken for a new-length recompile).
SHAPES = {
    "cpu": [[(2, 48), (2, 61)], [(2, 37), (2, 72)], [(2, 55), (3, 61)], [(2, 80), (2, 43)],
            [(2, 66), (2, 90)], [(2, 58), (2, 75)]],
    "cuda": [[(2, 1024), (2, 1536)], [(2, 768), (2, 2048)], [(2, 640), (3, 768)], [(2, 1792), (2, 896)],
             [(2, 1280), (2, 512)], [(2, 1152), (2, 2048)], [(2, 1664), (2, 1408)], [(2, 960), (2, 1024)]],
}
SPECS: dict[str, ModelSpec] = {"cpu": TINY_QLORA, "cuda": LLAMA_3_2_1B}


@dataclass
class CRun:
    """Everything the C tests judge: the training records, what dynamo did, the A ops, the setting."""

    spec: ModelSpec
    schedule: Schedule
    dtype: torch.dtype
    device: torch.device
    eager: TrainRecord | None = None  # the oracle, or None when C.correct is not selected
    eager_floor: TrainRecord | None = None  # eager math attention along the oracle's trajectory: the noise floor
    compiled: TrainRecord | None = None  # partial when the run crashed
    compiled_names: list[str] | None = None  # the trainable parameters of what compile_qlora returned
    dynamo: DynamoReport | None = None
    error: str | None = None  # the crash, formatted
    part_a_ops: frozenset[str] | None = None  # ops the submission's A entry traces to (None: no A entry)
    part_a_error: str | None = None  # why A's ops could not be found here
    graded: frozenset[str] = frozenset()  # the C criteria this session grades (which of them tells a crash)

    def setting(self) -> str:
        """The run's setting in one line, for details."""
        return f"{self.spec.name}, {str(self.dtype).removeprefix('torch.')}, {self.device.type}; {self.schedule.describe()}"

    def judges_the_run(self, criterion: str) -> bool:
        """Whether `criterion`'s test gets as far as the compiled run here: flex attention and max-autotune are
        decided on a GPU only, `use_part_A` only where puzzle A's own ops were found, `global_state_untouched` by
        the guards."""
        if criterion in ("uses_flex_attention", "max_autotune_triton_matmul"):
            return self.device.type == "cuda"
        if criterion == "use_part_A":
            return self.part_a_error is None and bool(self.part_a_ops)
        return criterion != "global_state_untouched"

    def crash_holder(self) -> str | None:
        """The criterion whose verdict tells the crash: the first graded criterion, in the rubric's order, whose test
        judges the run here (`correct` whenever it is graded); None when none is."""
        from grader.scoring.rubric import PUZZLE_C

        return next((c.name for c in PUZZLE_C.criteria if c.name in self.graded and self.judges_the_run(c.name)),
                    None)

    def fail_if_crashed(self, criterion: str, detail: str = "") -> None:
        """If the compiled run crashed, fail the calling test, which decides `criterion`: with the crash, where it
        happened, when `criterion` is the `crash_holder`; otherwise with a one-line pointer to it. `detail` adds
        what could still be judged."""
        import pytest

        if self.error is None:
            return
        holder = self.crash_holder()
        said = (f"the compiled training run crashed: {self.error}" if holder in (None, criterion) else
                f"not judged: the compiled training run crashed (see C.{holder})")
        pytest.fail(said + (f"\n{detail}" if detail else ""), pytrace=False)


# The compiled run's deadline (`grader.box.watchdog`): a compile with max-autotune took 253 s on an H200 (2026-12-04).
TRAIN_FLOOR_S = 900.0


def execute(box: Box, *, device: torch.device, seed: int, progress: Progress, oracle: bool,
            probe_part_a: bool) -> CRun:
    """Run the eager oracle and noise floor here (if `oracle`), then `compile_qlora` and training through it in the
    submission's box (`grader.puzzle_c.tasks.train`), along the oracle's trajectory when there is one."""
    run = setting(device, seed)
    reference_s = 0.0
    if oracle:
        reference_s = _train_oracle(run, seed, progress)
        _train_noise_floor(run, seed, progress)
    _train_compiled(run, box, seed, reference_s=reference_s, keep=oracle, probe_part_a=probe_part_a)
    return run


def setting(device: torch.device, seed: int) -> CRun:
    """A run with nothing trained yet: the model size and the schedule of shapes for `device`, in bfloat16."""
    import torch

    kind = device.type if device.type in SPECS else "cpu"
    spec = SPECS[kind]
    return CRun(spec, make_schedule(vocab_size=spec.vocab_size, shapes=SHAPES[kind], device=device, seed=seed),
                torch.bfloat16, device)


def _steps(run: CRun) -> str:
    return f"{run.spec.name}, {len(run.schedule.steps)} optimizer steps"


def _train_oracle(run: CRun, seed: int, progress: Progress) -> float:
    """Train the eager oracle (sdpa attention, every step's weights and gradients kept) into `run.eager`; its
    seconds, which the compiled run's deadline allows for."""
    import time

    from grader.puzzle_c import training

    model = build_qlora_model(run.spec, dtype=run.dtype, device=run.device, seed=seed)
    with progress.step("C: eager training, the oracle", _steps(run)):
        start = time.perf_counter()
        run.eager = training.train(model, run.schedule, dtype=run.dtype, device=run.device, keep=True)
        seconds = time.perf_counter() - start
    del model
    _free(run.device)
    return seconds


def _train_noise_floor(run: CRun, seed: int, progress: Progress) -> None:
    """The same steps with another valid rounding (math attention instead of sdpa), along the oracle's trajectory,
    into `run.eager_floor`: how far two correct computations of the same gradients differ here, which `correct`'s
    tolerances are measured against."""
    from grader.puzzle_c import training

    model = build_qlora_model(run.spec, dtype=run.dtype, device=run.device, seed=seed)
    model.get_base_model().set_attn_implementation("eager")
    with progress.step("C: eager math attention along the oracle's steps, the noise floor", _steps(run)):
        run.eager_floor = training.train(model, run.schedule, dtype=run.dtype, device=run.device, keep=True,
                                        follow=run.eager)
    del model
    _free(run.device)


def _train_compiled(run: CRun, box: Box, seed: int, *, reference_s: float, keep: bool, probe_part_a: bool) -> None:
    """`compile_qlora` and training through what it returns, in the submission's box (along the oracle's trajectory
    when `run` has one), into `run`: the record, the trainable names, dynamo's report, the A ops, or the crash."""
    from grader.box import watchdog
    from grader.box.client import BoxStopped, SubmissionError
    from grader.measure.dynamo import DynamoReport
    from grader.puzzle_c import training

    run.compiled = training.TrainRecord()
    try:
        got = box.run("C.train", run.spec, run.schedule, seed=seed, dtype=run.dtype,
                      follow=run.eager.step_weights if run.eager else None, keep=keep, probe_part_a=probe_part_a,
                      deadline=watchdog.deadline(run.device.type, reference_s, floor_s=TRAIN_FLOOR_S))
    except SubmissionError as exc:  # raised outside the run it guards: in building the model, say
        run.error = exc.describe()
        return
    except BoxStopped as exc:
        run.error = str(exc)
        return
    run.compiled = training.TrainRecord.from_data(got["record"])
    run.compiled_names = got["names"]
    run.dynamo = DynamoReport.from_data(got["dynamo"]) if got["dynamo"] is not None else None
    run.error = got["error"]
    run.part_a_ops = frozenset(got["part_a_ops"]) if got["part_a_ops"] is not None else None
    run.part_a_error = got["part_a_error"]


def _free(device: torch.device) -> None:
    """Free what the last model left: Python's garbage, and on a GPU the allocator's cached blocks."""
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

"""Puzzle C's training runs, done once per session: what every C test reads.

With `correct` selected, the QLoRA Llama is built from the run's seed and trained eagerly with AdamW (sdpa
attention: the oracle, keeping every step's weights and gradients), then built again and run eagerly along
the oracle's trajectory with math attention under activation checkpointing (the noise floor: another valid
rounding of the same steps, one layer's attention matrices alive at a time), both here in the judge, or loaded
from the oracle store (`grader.puzzle_c.oracle_store`) when an earlier grading computed them. Last, in the
submission's box, a fresh copy goes to its `compile_qlora`, and what comes back is trained under
`grader.measure.dynamo.record()`, along the oracle's trajectory when there is one (`grader.puzzle_c.tasks`). A crash
is kept, not raised: every test that judges the run then fails, one of them with the crash
(`CRun.crash_holder`), the others pointing to it. An out-of-memory error in the box is the submission's only
when its own process went past `BOX_MEMORY_ALLOWANCE`; below that, another process took the memory, and the run is
`starved`: every C criterion is then not measured, the grading incomplete.
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
    from grader.puzzle_c.oracle_store import OracleStore
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
    starved: str | None = None  # why the box ran out of memory that the submission did not use (not its verdict)
    box_peak_bytes: int | None = None  # the box's own peak device memory (its allocator's reserved bytes; GPU only)
    one_off_peak_bytes: int | None = None  # the judge's GPU peak while it trained the oracle and floor here
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
# The memory a submission's box may use before an out-of-memory error there is its own (its process's peak, from its
# CUDA allocator's reserved bytes, or its peak resident set on a CPU, plus the allocation that failed). On the GPU,
# twice the eager training of the same model (16.21 GiB on an H200, BENCHMARKS.md, call C2): the reference compiles
# to 0.54x of that, a whole-model compile of PEFT's model stays near 1x. On the CPU, the box's whole process
# (torch, Inductor and the tiny model) with room to spare: the reference's box peaked at about 2 GiB there.
GIB = 2**30
BOX_MEMORY_ALLOWANCE = {"cuda": 32 * GIB, "cpu": 8 * GIB}


def execute(box: Box, *, device: torch.device, seed: int, progress: Progress, oracle: bool,
            probe_part_a: bool, store: OracleStore | None = None) -> CRun:
    """The eager oracle and noise floor (if `oracle`: from `store` when it holds them, else trained here and stored),
    then `compile_qlora` and training through it in the submission's box (`grader.puzzle_c.tasks.train`), along the
    oracle's trajectory when there is one."""
    run = setting(device, seed)
    reference_s = _oracle_and_floor(run, seed, progress, store) if oracle else 0.0
    _train_compiled(run, box, seed, reference_s=reference_s, keep=oracle, probe_part_a=probe_part_a)
    return run


def _oracle_and_floor(run: CRun, seed: int, progress: Progress, store: OracleStore | None) -> float:
    """Fill `run.eager` and `run.eager_floor` (loaded from `store`, else trained and then stored); the oracle's
    seconds, which the compiled run's deadline allows for."""
    from grader.puzzle_c import oracle_store

    if store is None:
        return _train_both(run, seed, progress)
    entry = oracle_store.key(run, seed)
    waiting = lambda: progress.line("C: another grading is computing the same oracle; waiting for it")  # noqa: E731
    with store.turn(entry, waiting, shared=True):
        found = store.load(entry)
    if isinstance(found, str):
        with store.turn(entry, waiting):
            found = store.load(entry)  # another grading may have stored it while this one waited
            if isinstance(found, str):
                progress.line(f"C: {found} in {store.directory}: training it here")
                seconds = _train_both(run, seed, progress)
                store.save(entry, run.eager, run.eager_floor, seconds)
                return seconds
    run.eager, run.eager_floor, seconds = found
    progress.line(f"C: the eager oracle and noise floor loaded from the oracle store ({store.directory})")
    return seconds


def _train_both(run: CRun, seed: int, progress: Progress) -> float:
    """Train the oracle and the floor here; the oracle's seconds. On a GPU, the judge's peak over both is kept apart
    (`one_off_peak_bytes`): a grading that loads them from the store never holds it."""
    import torch

    cuda = run.device.type == "cuda"
    seconds = _train_oracle(run, seed, progress)
    oracle_reserved = torch.cuda.max_memory_reserved(run.device) if cuda else 0  # `train` reset the peak at its start
    _train_noise_floor(run, seed, progress)
    if cuda:
        run.one_off_peak_bytes = max(oracle_reserved, torch.cuda.max_memory_reserved(run.device))
        torch.cuda.reset_peak_memory_stats(run.device)
        progress.line(f"C: the judge's GPU peak over the oracle and the floor: {run.one_off_peak_bytes / GIB:.2f} GiB "
                      f"reserved (oracle {run.eager.peak_bytes / GIB:.2f}, floor {run.eager_floor.peak_bytes / GIB:.2f}"
                      " GiB allocated)")
    return seconds


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
    tolerances are measured against.

    Each decoder layer is checkpointed (recomputed in backward, transformers' non-reentrant checkpointing): math
    attention keeps its (batch, heads, length, length) scores and probabilities for backward, 40 GiB over 16 layers
    at the GPU's lengths (BENCHMARKS.md, 2026-11-25) against sdpa's 16 GiB; recomputed, one layer's are alive at a
    time. The recomputation repeats the forward's operations exactly, so the gradients are those of math attention
    (on the CPU bit for bit: tests/test_standard_c.py)."""
    from grader.puzzle_c import training

    model = build_qlora_model(run.spec, dtype=run.dtype, device=run.device, seed=seed)
    model.get_base_model().set_attn_implementation("eager")
    model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
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
    run.box_peak_bytes = got["peak_bytes"]
    if got["out_of_memory"] is not None:
        oom = BoxOutOfMemory(**got["out_of_memory"])
        allowance = BOX_MEMORY_ALLOWANCE[run.device.type if run.device.type in BOX_MEMORY_ALLOWANCE else "cpu"]
        if oom.needed_bytes <= allowance:
            run.starved, run.error = oom.starved(allowance), None
        else:
            run.error += f"\n{oom.own(allowance)}"


@dataclass(frozen=True)
class BoxOutOfMemory:
    """What the box measured of itself when the submission's run ran out of memory (`grader.puzzle_c.tasks`)."""

    own_peak_bytes: int  # the box process's own peak (CUDA allocator reserved, or peak resident set on a CPU)
    requested_bytes: int  # the allocation that failed, when the error says (else 0)
    free_bytes: int | None  # the device's free memory at the failure (GPU only)
    total_bytes: int | None

    @property
    def needed_bytes(self) -> int:
        """What the submission's process would have held had the allocation succeeded."""
        return self.own_peak_bytes + self.requested_bytes

    def _figures(self) -> str:
        device = (f"; the GPU had {self.free_bytes / GIB:.1f} GiB free of {self.total_bytes / GIB:.1f} GiB"
                  if self.free_bytes is not None and self.total_bytes is not None else "")
        return (f"its own peak {self.own_peak_bytes / GIB:.2f} GiB, {self.requested_bytes / GIB:.2f} GiB more "
                f"requested{device}")

    def starved(self, allowance: int) -> str:
        """The reason a starved run's criteria are not measured."""
        return (f"the submission's run ran out of memory within its allowance of {allowance / GIB:.0f} GiB "
                f"({self._figures()}): another process took the memory, so this is not the submission's verdict; "
                f"grade it alone or with fewer jobs (python -m grader.batch packs gradings by memory)")

    def own(self, allowance: int) -> str:
        """The line added to a crash that is the submission's own."""
        return f"out of memory past the submission's allowance of {allowance / GIB:.0f} GiB ({self._figures()})"


def _free(device: torch.device) -> None:
    """Free what the last model left: Python's garbage, and on a GPU the allocator's cached blocks."""
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

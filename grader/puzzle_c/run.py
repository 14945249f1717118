"""Puzzle C's training runs, done once per session: what every C test reads.

With `correct` selected, the QLoRA Llama is built from the run's seed and trained eagerly with AdamW (sdpa
attention: the oracle, keeping every step's weights and gradients), then built again and run eagerly along
the oracle's trajectory with math attention (the noise floor: another valid rounding of the same steps).
Last, a fresh copy goes to the submission's `compile_qlora`, and what comes back is trained under
`grader.measure.dynamo.record()`, along the oracle's trajectory when there is one. A crash is kept, not
raised: every test then fails with it.
"""

from __future__ import annotations

import gc
import os
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from grader.llama import LLAMA_3_2_1B, TINY_QLORA, ModelSpec
from grader.puzzle_c.builders import Schedule, build_qlora_model, make_schedule

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
    dtype: Any
    device: Any
    eager: Any = None  # TrainRecord of the oracle, or None when C.correct is not selected
    eager_floor: Any = None  # TrainRecord of eager math attention along the oracle's trajectory: the noise floor
    compiled: Any = None  # TrainRecord (partial when the run crashed)
    compiled_names: list[str] | None = None  # the trainable parameters of what compile_qlora returned
    dynamo: Any = None  # DynamoReport
    error: str | None = None  # the crash, formatted
    part_a_ops: frozenset[str] | None = None  # ops the submission's A entry traces to (None: no A entry)
    part_a_error: str | None = None  # why A's ops could not be found here

    def setting(self) -> str:
        """The run's setting in one line, for details."""
        return f"{self.spec.name}, {str(self.dtype).removeprefix('torch.')}, {self.device.type}; {self.schedule.describe()}"

    def fail_if_crashed(self, detail: str = "") -> None:
        """Fail the calling test with the crash (and `detail`, what could still be judged)."""
        import pytest

        if self.error is not None:
            pytest.fail(f"the compiled training run crashed: {self.error}" + (f"\n{detail}" if detail else ""),
                        pytrace=False)


def execute(compile_qlora: Callable[..., Any], submission: Any, *, device: Any, seed: int, progress: Any,
            oracle: bool, probe_part_a: bool) -> CRun:
    """Run the eager oracle and noise floor (if `oracle`), then `compile_qlora` and training through it."""
    import bitsandbytes as bnb
    import torch
    import torch._dynamo

    from grader.measure import dynamo
    from grader.puzzle_c import oracles

    kind = device.type if device.type in SPECS else "cpu"
    spec = SPECS[kind]
    dtype = torch.bfloat16
    run = CRun(spec, make_schedule(vocab_size=spec.vocab_size, shapes=SHAPES[kind], device=device, seed=seed),
               dtype, device)
    steps = f"{spec.name}, {len(run.schedule.steps)} optimizer steps"
    if oracle:
        model = build_qlora_model(spec, dtype=dtype, device=device, seed=seed)
        with progress.step("C: eager training, the oracle", steps):
            run.eager = oracles.train(model, run.schedule, dtype=dtype, device=device, keep=True)
        del model
        _free(device)
        # The same steps with another valid rounding (math attention instead of sdpa): how far two correct
        # computations of the same gradients differ here, which `correct`'s tolerances are measured against.
        model = build_qlora_model(spec, dtype=dtype, device=device, seed=seed)
        model.get_base_model().set_attn_implementation("eager")
        with progress.step("C: eager math attention along the oracle's steps, the noise floor", steps):
            run.eager_floor = oracles.train(model, run.schedule, dtype=dtype, device=device, keep=True,
                                            follow=run.eager)
        del model
        _free(device)
    model = build_qlora_model(spec, dtype=dtype, device=device, seed=seed)
    names = oracles.canonical_names(model)
    if probe_part_a:
        _probe_part_a(run, submission, model)
    torch._dynamo.reset()
    run.compiled = oracles.TrainRecord()
    try:
        # On a GPU, inductor's caches are off: compile time is then honest, and every graph is lowered
        # (so max-autotune's matmul templates are seen). On CPU they stay on to keep CI short.
        # bitsandbytes' CPU kernels torch.compile themselves when they run; those graphs are not the
        # submission's and are left out of every count.
        with progress.step("C: compile_qlora and training through it",
                           f"{steps}; compiling can take minutes"), \
                dynamo.record(disable_inductor_caches=device.type == "cuda",
                              ignore=(os.path.dirname(bnb.__file__),)) as report:
            run.dynamo = report
            trained = compile_qlora(model)
            if not isinstance(trained, torch.nn.Module):
                raise TypeError(f"compile_qlora returned {type(trained).__name__}, expected a torch.nn.Module")
            run.compiled_names = sorted(oracles.trainable_weights(trained, names))
            oracles.train(trained, run.schedule, dtype=dtype, device=device, record=run.compiled,
                          compilations=lambda: report.compilations, names=names, keep=oracle, follow=run.eager)
    except Exception as exc:  # judged by every test, not raised here
        where = traceback.extract_tb(exc.__traceback__)[-1]
        run.error = f"{type(exc).__name__}: {str(exc)[:1500]} ({where.filename}:{where.lineno})"
        hits = run.dynamo.recompile_limit_hits if run.dynamo else []
        if hits:
            run.error += "\n" + "\n".join(" ".join(line.strip() for line in h.splitlines()[:3]) for h in hits)
    del model
    _free(device)
    return run


def _probe_part_a(run: CRun, submission: Any, model: Any) -> None:
    """Find the ops the submission's own `dequantize_nf4` traces to, on one of the model's 4-bit weights."""
    import bitsandbytes as bnb

    from grader.measure.dynamo import ops_traced

    if not submission.provides("A"):
        return
    layer = next(m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))
    weight, quant_state = layer.weight.data, layer.weight.quant_state
    try:
        dequantize = submission.entry_point("A")
        ops = ops_traced(lambda w: dequantize(w, quant_state), weight)
    except Exception as exc:
        run.part_a_error = f"the submission's dequantize_nf4 did not run under torch.compile here: " \
                           f"{type(exc).__name__}: {str(exc)[:300]}"
        return
    run.part_a_ops = frozenset(op for op in ops if "::" in op and op.split("::")[0] not in ("aten", "prims"))


def _free(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

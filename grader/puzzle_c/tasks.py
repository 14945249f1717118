"""Puzzle C's task: the compiled training run, in the submission's box (`grader.box.tasks`).

`C.train` builds the QLoRA Llama from the same spec and seed as the judge's oracle, finds the ops the submission's
own puzzle-A kernel traces to (when asked), hands the model to `compile_qlora` and trains what comes back under
`grader.measure.dynamo.record()`, along the oracle's trajectory when the judge sends it. A crash is kept, not
raised: the reply carries what was measured up to it, and the error with the submission's frame (dynamo's user
stack included: `grader.box.tasks.raised_at`).
"""

from __future__ import annotations

import os
from typing import Any

import bitsandbytes as bnb
import torch

from grader.box.tasks import Context, describe_error, task
from grader.llama import ModelSpec
from grader.measure import dynamo
from grader.measure.dynamo import ops_traced
from grader.measure.memory import out_of_memory, process_peak_bytes, requested_bytes
from grader.puzzle_c import training
from grader.puzzle_c.builders import Schedule, build_qlora_model


@task("C.train")
def train(ctx: Context, spec: ModelSpec, schedule: Schedule, *, seed: int, dtype: torch.dtype,
          follow: list[dict[str, torch.Tensor]] | None, keep: bool, probe_part_a: bool) -> dict[str, Any]:
    """Compile and train; returns the run's record, the trainable names, dynamo's report, the A probe and the error."""
    device = ctx.device
    out: dict[str, Any] = {"names": None, "error": None, "part_a_ops": None, "part_a_error": None, "dynamo": None,
                           "out_of_memory": None, "record": training.TrainRecord(), "peak_bytes": None}
    try:
        model = build_qlora_model(spec, dtype=dtype, device=device, seed=seed)
    except Exception as exc:  # the grader's own model: only running out of memory (another process's doing) is told
        if not out_of_memory(exc):
            raise
        out["error"] = f"building the grader's model in the box: {type(exc).__name__}: {str(exc)[:500]}"
        out["out_of_memory"] = _memory_report(exc, device)
        return out
    names = training.canonical_names(model)
    if probe_part_a:
        out.update(_probe_part_a(ctx, model))
    torch._dynamo.reset()
    record = training.TrainRecord()
    trajectory = training.TrainRecord(step_weights=follow) if follow is not None else None
    steps = f"{spec.name}, {len(schedule.steps)} optimizer steps"
    try:
        # On a GPU, inductor's caches are off: compile time is then honest, and every graph is lowered (so
        # max-autotune's matmul templates are seen). On a CPU they stay on, in the box's private directory.
        # bitsandbytes' CPU kernels torch.compile themselves when they run; those graphs are not the
        # submission's and are left out of every count.
        with ctx.progress.step("C: compile_qlora and training through it", f"{steps}; compiling can take minutes"), \
                dynamo.record(disable_inductor_caches=device.type == "cuda",
                              ignore=(os.path.dirname(bnb.__file__),)) as report:
            out["dynamo"] = report
            trained = ctx.entry()(model)
            if not isinstance(trained, torch.nn.Module):
                raise TypeError(f"compile_qlora returned {type(trained).__name__}, expected a torch.nn.Module")
            out["names"] = sorted(training.trainable_weights(trained, names))
            training.train(trained, schedule, dtype=dtype, device=device, record=record,
                          compilations=lambda: report.compilations, names=names, keep=keep, follow=trajectory)
    except Exception as exc:  # judged by the tests (`grader.puzzle_c.run.CRun.fail_if_crashed`), not raised here
        error = describe_error(exc, ctx.submission.files)
        where = f"raised at {error['where']}{'' if error['from_submission'] else ', not in the submission'}"
        out["error"] = f"{type(exc).__name__}: {str(exc)[:1500]} ({where})"
        if out_of_memory(exc):  # whose it is, the judge decides from what this process itself held
            out["out_of_memory"] = _memory_report(exc, device)
        hits = out["dynamo"].recompile_limit_hits if out["dynamo"] else []
        if hits:
            out["error"] += "\n" + "\n".join(" ".join(line.strip() for line in h.splitlines()[:3]) for h in hits)
    out["record"] = record
    out["peak_bytes"] = process_peak_bytes(device) if device.type == "cuda" else None
    return out


def _memory_report(exc: BaseException, device: torch.device) -> dict[str, int | None]:
    """What this process held when `exc` (an out-of-memory error) was raised, for the judge to decide whose it was
    (`grader.puzzle_c.run.BoxOutOfMemory`)."""
    free, total = torch.cuda.mem_get_info(device) if device.type == "cuda" else (None, None)
    return {"own_peak_bytes": process_peak_bytes(device), "requested_bytes": requested_bytes(exc),
            "free_bytes": free, "total_bytes": total}


def _probe_part_a(ctx: Context, model: torch.nn.Module) -> dict[str, Any]:
    """The ops the submission's own `dequantize_nf4` traces to, on one of the model's 4-bit weights."""
    if not ctx.submission.provides("A"):
        return {}
    layer = next(m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))
    weight, quant_state = layer.weight.data, layer.weight.quant_state
    try:
        dequantize = ctx.entry("A")
        ops = ops_traced(lambda w: dequantize(w, quant_state), weight)
    except Exception as exc:
        return {"part_a_error": f"the submission's dequantize_nf4 did not run under torch.compile here: "
                                f"{type(exc).__name__}: {str(exc)[:300]}"}
    return {"part_a_ops": sorted(op for op in ops if "::" in op and op.split("::")[0] not in ("aten", "prims"))}

"""Puzzle C on a GPU: train the grader's QLoRA Llama (Llama-3.2-1B architecture, bf16, the grader's
varying-length schedule) eagerly and through each named variant, in one process, and write one JSON line
per variant: steady step time, peak memory, compile overhead, compilations, graph breaks, losses.

    python scripts/c_gpu_bench.py OUT.jsonl VARIANT...

Variants: `reference` (solutions.qlora_compile), `reference_no_autotune` (the same without max-autotune),
`plain` (`torch.compile` of the whole PeftModel), and two uncompiled noise-floor runs that compute the
same function with other rounding: `eager_math` (attention without sdpa) and `eager_part_a` (puzzle A's
dequantization instead of bitsandbytes'). The eager run is the oracle of C's correctness standard
(grader/puzzle_c/standard.py): every variant follows its trajectory (the oracle's LoRA weights copied in
before each step, outside the timer) and each row carries the largest loss, gradient-scale and
gradient-error gap from it. Peak memory of a following run holds no AdamW state.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

import torch

from grader.llama import LLAMA_3_2_1B
from grader.measure import dynamo
from grader.puzzle_c import standard, training
from grader.puzzle_c.builders import build_qlora_model, make_schedule
from grader.puzzle_c.run import SHAPES

SEED = 1


def _variants() -> dict:
    import types

    import bitsandbytes as bnb

    import solutions.qlora_compile as ref
    from solutions.nf4 import dequantize_nf4

    def no_autotune(model):
        ref._CUDA_OPTIONS = {k: v for k, v in ref._CUDA_OPTIONS.items() if k != "max_autotune_gemm"}
        return ref.compile_qlora(model)

    def math_attention(model):
        model.get_base_model().set_attn_implementation("eager")
        return model

    def part_a(model):
        forward = ref._linear4bit_forward(dequantize_nf4)
        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                module.forward = types.MethodType(forward, module)
        return model

    return {"reference": ref.compile_qlora, "reference_no_autotune": no_autotune, "plain": torch.compile,
            "eager_math": math_attention, "eager_part_a": part_a}


def _differences(row: dict, eager: training.TrainRecord, rec: training.TrainRecord) -> None:
    found = standard.gaps(rec, eager)
    for quantity in standard.QUANTITIES:
        row[quantity.replace(" ", "_")] = standard.largest(found, quantity).size


def _row(name: str, rec: training.TrainRecord, report: dynamo.DynamoReport | None, wall: float) -> dict:
    return {
        "variant": name, "steady_step_s": rec.steady_step_seconds(), "peak_gib": rec.peak_bytes / 2**30,
        "compile_overhead_s": rec.compile_overhead_seconds() if report else 0.0, "wall_s": wall,
        "compilations": report.compilations if report else 0,
        "graph_breaks": [str(b) for b in report.graph_breaks] if report else [],
        "recompiles": [str(r)[:300] for r in report.recompiles] if report else [],
        "losses": rec.losses, "step_s": rec.step_seconds,
    }


def main(out: str, names: list[str]) -> None:
    import bitsandbytes as bnb

    device, dtype = torch.device("cuda"), torch.bfloat16
    schedule = make_schedule(vocab_size=LLAMA_3_2_1B.vocab_size, shapes=SHAPES["cuda"], device=device, seed=SEED)
    model = build_qlora_model(LLAMA_3_2_1B, dtype=dtype, device=device, seed=SEED)
    start = time.perf_counter()
    eager_rec = training.train(model, schedule, dtype=dtype, device=device, names=training.canonical_names(model),
                              keep=True)
    eager = _row("eager", eager_rec, None, time.perf_counter() - start)
    _write(out, eager, eager)
    del model
    variants = _variants()
    for name in names:
        gc.collect()
        torch.cuda.empty_cache()
        torch._dynamo.reset()
        model = build_qlora_model(LLAMA_3_2_1B, dtype=dtype, device=device, seed=SEED)
        start = time.perf_counter()
        with dynamo.record(disable_inductor_caches=True, fail_on_recompile_limit=False,
                           ignore=(os.path.dirname(bnb.__file__),)) as report:
            names = training.canonical_names(model)
            trained = variants[name](model)
            rec = training.train(trained, schedule, dtype=dtype, device=device, names=names, keep=True,
                                follow=eager_rec, compilations=lambda: report.compilations)
        row = _row(name, rec, report, time.perf_counter() - start)
        _differences(row, eager_rec, rec)
        _write(out, row, eager)
        del model, trained


def _write(out: str, row: dict, eager: dict) -> None:
    """Append the row (so a run cut short keeps what it measured) and print its summary."""
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{row['variant']:>22}: step {row['steady_step_s'] * 1e3:7.1f} ms ({eager['steady_step_s'] / row['steady_step_s']:.2f}x), "
          f"peak {row['peak_gib']:.2f} GiB ({row['peak_gib'] / eager['peak_gib']:.2f}x), compile "
          f"{row['compile_overhead_s']:.0f} s, {row['compilations']} compilations, {len(row['graph_breaks'])} breaks, "
          f"gaps: loss {row.get('loss', 0):.2e}, gradient scale {row.get('gradient_scale', 0):.2e}, "
          f"gradient error {row.get('gradient_error', 0):.2e}",
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

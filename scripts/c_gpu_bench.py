"""Puzzle C on a GPU: train the grader's QLoRA Llama (Llama-3.2-1B architecture, bf16, the grader's
varying-length schedule) eagerly and through each named variant, in one process, and write one JSON line
per variant: steady step time, peak memory, compile overhead, compilations, graph breaks, losses.

    python scripts/c_gpu_bench.py OUT.jsonl [reference] [plain]

`reference` is solutions.qlora_compile; `plain` is `torch.compile(model)` of the whole PeftModel.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

import torch

from grader.measure import dynamo
from grader.puzzle_c import oracles
from grader.puzzle_c.builders import LLAMA_3_2_1B, build_qlora_model, make_schedule
from grader.puzzle_c.conftest import SHAPES

SEED = 1


def _variants() -> dict:
    from solutions.qlora_compile import compile_qlora

    return {"reference": compile_qlora, "plain": lambda m: torch.compile(m)}


def _row(name: str, rec: oracles.TrainRecord, report: dynamo.DynamoReport | None, wall: float) -> dict:
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
    rows = []
    model = build_qlora_model(LLAMA_3_2_1B, dtype=dtype, device=device, seed=SEED)
    start = time.perf_counter()
    rows.append(_row("eager", oracles.train(model, schedule, dtype=dtype, device=device), None,
                     time.perf_counter() - start))
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
            trained = variants[name](model)
            rec = oracles.train(trained, schedule, dtype=dtype, device=device,
                                compilations=lambda: report.compilations)
        rows.append(_row(name, rec, report, time.perf_counter() - start))
        del model, trained
    with open(out, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    eager = rows[0]
    for row in rows:
        print(f"{row['variant']:>10}: step {row['steady_step_s'] * 1e3:7.1f} ms ({eager['steady_step_s'] / row['steady_step_s']:.2f}x), "
              f"peak {row['peak_gib']:.2f} GiB ({row['peak_gib'] / eager['peak_gib']:.2f}x), compile "
              f"{row['compile_overhead_s']:.0f} s, {row['compilations']} compilations, "
              f"{len(row['graph_breaks'])} breaks, max loss diff "
              f"{max(abs(a - b) for a, b in zip(row['losses'], eager['losses'])):.2e}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

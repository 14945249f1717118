"""Puzzle C on a GPU: where a steady training step of the reference spends its time.

    python scripts/c_gpu_profile.py OUT_DIR

Times the reference's eager flex-attention block mask alone, then builds the grader's QLoRA Llama
(Llama-3.2-1B architecture, bf16), compiles it with `solutions.qlora_compile` and trains the grader's first
optimizer steps until nothing compiles, then profiles two more micro-batches with `torch.profiler`: the
largest operators by self CPU and by device time, and the micro-batches' wall time.
"""

from __future__ import annotations

import os
import sys
import time

import torch

from grader.puzzle_c import run
from grader.puzzle_c.builders import build_qlora_model


def _micro(model: torch.nn.Module, mb, items: torch.Tensor) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask, labels=mb.labels,
                    num_items_in_batch=items)
    out.loss.backward()


def _block_mask_seconds(batch: int, length: int, reps: int = 20) -> float:
    import solutions.qlora_compile as ref

    mask = torch.ones(batch, length, dtype=torch.long, device="cuda")
    mask[0, length // 2:] = 0
    ref._padding_block_mask(mask)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        ref._padding_block_mask(mask)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


def main(out_dir: str) -> None:
    from torch.profiler import ProfilerActivity, profile

    import solutions.qlora_compile as ref

    os.makedirs(out_dir, exist_ok=True)
    for batch, length in ((2, 1024), (2, 2048)):
        print(f"eager block mask {batch}x{length}: {_block_mask_seconds(batch, length) * 1e3:.2f} ms", flush=True)
    c = run.setting(torch.device("cuda"), seed=1)
    model = ref.compile_qlora(build_qlora_model(c.spec, dtype=c.dtype, device=c.device, seed=1))
    model.train()
    steps = [mb for step in c.schedule.steps for mb in step]
    items = torch.tensor(4096, device=c.device)
    for i, mb in enumerate(steps[:6]):  # the compiling micro-batch and a few steady ones
        start = time.perf_counter()
        _micro(model, mb, items)
        torch.cuda.synchronize()
        print(f"micro-batch {i} {tuple(mb.input_ids.shape)}: {time.perf_counter() - start:.3f} s", flush=True)
    profiled = steps[6:8]
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for mb in profiled:
            _micro(model, mb, items)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    table = prof.key_averages()
    with open(os.path.join(out_dir, "c_profile.txt"), "w") as f:
        f.write(table.table(sort_by="self_cpu_time_total", row_limit=40) + "\n")
        f.write(table.table(sort_by="self_device_time_total", row_limit=40) + "\n")
    shapes = [tuple(mb.input_ids.shape) for mb in profiled]
    print(f"profiled micro-batches {shapes}: {wall * 1e3:.1f} ms wall", flush=True)
    print(table.table(sort_by="self_device_time_total", row_limit=18), flush=True)
    print(table.table(sort_by="self_cpu_time_total", row_limit=14), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

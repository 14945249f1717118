"""Puzzle C on a GPU: train the grader's QLoRA Llama (Llama-3.2-1B architecture, bf16, the grader's
varying-length schedule) eagerly, then through each named variant, and write one JSON line per run: steady
step time, peak memory, compile overhead, compilations, graph breaks, losses, and where compiling spent its
time (`torch._dynamo.utils.compile_times`, the largest entries).

    python scripts/c_gpu_bench.py OUT.jsonl VARIANT[=SECONDS]...

The eager run is the oracle of C's correctness standard (grader/puzzle_c/standard.py); every variant follows
its trajectory (the oracle's LoRA weights copied in before each step, outside the timer) and each row carries
the largest loss, gradient-scale and gradient-error gap from it. Each variant runs in a process of its own,
started with empty Triton and Inductor cache directories and killed after SECONDS (default 300), so a compile
is cold and one variant's kernels never serve another.

Variants: `reference` (solutions.qlora_compile, Inductor's caches off, as the grader runs it);
`reference_cached` (the same with the caches on, then `torch.compiler.save_cache_artifacts()`) and after it
`reference_warm` (a new process loads those artifacts first: the second run a user sees);
`reference_static_floats` (the reference with dynamo's `specialize_float`: the layers' float attributes, such as
RMSNorm's epsilon, traced as constants, so dynamo does not restart its analysis of the layer); `no_autotune` (the
reference without max-autotune); `plain` (`torch.compile(dynamic=True)` of the whole PeftModel, its one
graph break, transformers' input-grad hook, removed as a user would: `disable_input_require_grads()`; training
without gradient checkpointing never needs it; as tests/good/c_whole_model_no_input_hook.py); and two
uncompiled noise-floor runs that compute the same function with other rounding: `eager_math` (attention
without sdpa) and `eager_part_a` (puzzle A's dequantization instead of bitsandbytes').
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable

import torch

from grader.measure import dynamo
from grader.puzzle_c import run, standard, training
from grader.puzzle_c.builders import build_qlora_model

SEED = 1
DEFAULT_SECONDS = 300
CACHED = ("reference_cached", "reference_warm")  # runs with Inductor's caches on


def _variants() -> dict[str, Callable]:
    import types

    import bitsandbytes as bnb

    import solutions.qlora_compile as ref
    from solutions.nf4 import dequantize_nf4

    def static_floats(model):
        torch._dynamo.config.specialize_float = True  # this process only: floats traced as constants
        return ref.compile_qlora(model)

    def no_autotune(model):
        ref._CUDA_OPTIONS = ref._CUDA_HEAD_OPTIONS
        return ref.compile_qlora(model)

    def plain(model):
        model.get_base_model().disable_input_require_grads()
        return torch.compile(model, dynamic=True)

    def math_attention(model):
        model.get_base_model().set_attn_implementation("eager")
        return model

    def part_a(model):
        forward = ref._linear4bit_forward(dequantize_nf4)
        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                module.forward = types.MethodType(forward, module)
        return model

    return {"reference": ref.compile_qlora, "reference_cached": ref.compile_qlora,
            "reference_warm": ref.compile_qlora, "reference_static_floats": static_floats,
            "no_autotune": no_autotune, "plain": plain,
            "eager_math": math_attention, "eager_part_a": part_a}


def _setting() -> run.CRun:
    """The grader's C setting on its GPU; its CPU one where there is no GPU (to try the script, not to measure)."""
    return run.setting(torch.device("cuda" if torch.cuda.is_available() else "cpu"), SEED)


def _row(name: str, rec: training.TrainRecord, report: dynamo.DynamoReport | None, wall: float) -> dict:
    return {
        "variant": name, "steady_step_s": rec.steady_step_seconds(), "peak_gib": (rec.peak_bytes or 0) / 2**30,
        "compile_overhead_s": rec.compile_overhead_seconds() if report else 0.0, "wall_s": wall,
        "compilations": report.compilations if report else 0,
        "graph_breaks": [str(b) for b in report.graph_breaks] if report else [],
        "recompiles": [str(r)[:300] for r in report.recompiles] if report else [],
        "restarts": list(report.restarts) if report else [],
        "losses": rec.losses, "step_s": rec.step_seconds,
        "micro": [[m.step, m.batch, m.length, m.compilations, round(m.seconds, 3)] for m in rec.micro],
    }


def _compile_breakdown(top: int = 25) -> dict[str, float]:
    """The `top` largest of dynamo's and Inductor's timed compile phases, in seconds (phases nest)."""
    from torch._dynamo.utils import compile_times

    names, values = compile_times(repr="csv", aggregate=True)
    timed = {n: float(v) for n, v in zip(names, values)}
    return dict(sorted(timed.items(), key=lambda kv: -kv[1])[:top])


def run_variant(name: str, out: str, eager_path: str, artifacts: str) -> None:
    """One variant in this process: build, compile and train it along the saved eager record; append its row."""
    import bitsandbytes as bnb

    logging.basicConfig(level=logging.INFO, format=f"[c_bench] {name}: %(message)s")  # a line per micro-batch
    c = _setting()
    eager_rec = torch.load(eager_path, weights_only=False)
    if name == "reference_warm":
        with open(artifacts, "rb") as f:
            torch.compiler.load_cache_artifacts(f.read())
    model = build_qlora_model(c.spec, dtype=c.dtype, device=c.device, seed=SEED)
    start = time.perf_counter()
    with dynamo.record(disable_inductor_caches=name not in CACHED, fail_on_recompile_limit=False,
                       ignore=(os.path.dirname(bnb.__file__),)) as report:
        names = training.canonical_names(model)
        trained = _variants()[name](model)
        rec = training.train(trained, c.schedule, dtype=c.dtype, device=c.device, names=names, keep=True,
                             follow=eager_rec, compilations=lambda: report.compilations)
    row = _row(name, rec, report, time.perf_counter() - start)
    row["compile_phases_s"] = _compile_breakdown()
    row["cache_counters"] = {f"{group}.{key}": n for group in ("inductor", "aot_autograd")
                             for key, n in torch._dynamo.utils.counters[group].items() if "cache" in key}
    found = standard.gaps(rec, eager_rec)
    for quantity in standard.QUANTITIES:
        row[quantity.replace(" ", "_")] = standard.largest(found, quantity).size
    if name == "reference_cached":
        saved = torch.compiler.save_cache_artifacts()
        if saved is not None:
            with open(artifacts, "wb") as f:
                f.write(saved[0])
            row["artifacts_bytes"] = len(saved[0])
    _append(out, row)


def main(out: str, requests: list[str]) -> None:
    """Train eagerly here, then run each requested variant in a fresh process with empty caches."""
    c = _setting()
    model = build_qlora_model(c.spec, dtype=c.dtype, device=c.device, seed=SEED)
    start = time.perf_counter()
    eager_rec = training.train(model, c.schedule, dtype=c.dtype, device=c.device, names=training.canonical_names(model),
                               keep=True)
    eager = _row("eager", eager_rec, None, time.perf_counter() - start)
    _append(out, eager)
    del model
    work = tempfile.mkdtemp(prefix="c_bench_")
    eager_path, artifacts = os.path.join(work, "eager.pt"), os.path.join(work, "mega_cache.bin")
    torch.save(eager_rec, eager_path)
    rows = [eager]
    for request in requests:
        name, _, seconds = request.partition("=")
        caches = tempfile.mkdtemp(prefix=f"{name}_", dir=work)
        env = {**os.environ, "TRITON_CACHE_DIR": os.path.join(caches, "triton"),
               "TORCHINDUCTOR_CACHE_DIR": os.path.join(caches, "inductor")}
        print(f"[c_bench] {name}: started, limit {seconds or DEFAULT_SECONDS} s", flush=True)
        try:
            subprocess.run([sys.executable, __file__, "--one", name, out, eager_path, artifacts], env=env,
                           timeout=float(seconds or DEFAULT_SECONDS), check=False)
        except subprocess.TimeoutExpired:
            _append(out, {"variant": name, "timed_out_s": float(seconds or DEFAULT_SECONDS)})
        with open(out) as f:
            last = json.loads(f.read().splitlines()[-1])
        if last.get("variant") == name:
            rows.append(last)
    for row in rows:
        _summary(row, eager)


def _append(out: str, row: dict) -> None:
    """Append the row at once, so a run cut short keeps what it measured."""
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def _summary(row: dict, eager: dict) -> None:
    if "timed_out_s" in row:
        print(f"{row['variant']:>18}: did not finish within {row['timed_out_s']:.0f} s", flush=True)
        return
    print(f"{row['variant']:>18}: step {row['steady_step_s'] * 1e3:7.1f} ms ({eager['steady_step_s'] / row['steady_step_s']:.2f}x), "
          f"peak {row['peak_gib']:.2f} GiB ({row['peak_gib'] / (eager['peak_gib'] or float('nan')):.2f}x), compile "
          f"{row['compile_overhead_s']:.0f} s, {row['compilations']} compilations, {len(row['graph_breaks'])} breaks, "
          f"gaps: loss {row.get('loss', 0):.2e}, gradient scale {row.get('gradient_scale', 0):.2e}, "
          f"gradient error {row.get('gradient_error', 0):.2e}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        run_variant(*sys.argv[2:6])
    else:
        main(sys.argv[1], sys.argv[2:])

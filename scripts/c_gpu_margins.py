"""Puzzle C's correctness margins, measured without compiling anything: how far LoRA faults and a valid
re-rounding move the standard's three quantities on the grader's model, run eagerly along the oracle's steps.

    python scripts/c_gpu_margins.py OUT.json [--seed N] [--b-scale S ...]

For each LoRA-B scale S (1 = the model as `builders.build_qlora_model` makes it; 0.1 = every lora_B weight
multiplied by 0.1 after building), the oracle is trained eagerly (sdpa) keeping every step, then each variant
runs eagerly along the oracle's trajectory: `floor` (math attention: the standard's noise floor), `x0.9`
(every LoRA scaling 10% low), `drop_scaling` (scaling 1 instead of alpha/r = 2), `o_proj_off` (o_proj's
adapter skipped). Nothing is compiled, so what a variant shows is the fault itself, not a compiler's rounding.
Per variant: the largest loss, gradient-scale and gradient-error gap (`grader.puzzle_c.standard.gaps`), the
median gradient error per decoder layer; per model: the adapters' output norm over the base layer's at the
first micro-batch, per layer. The device is the GPU when there is one (the Llama-3.2-1B architecture), else the
CPU with the tiny model.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import time
from collections import defaultdict

import torch

from grader.puzzle_c import standard, training
from grader.puzzle_c.builders import build_qlora_model, make_schedule
from grader.puzzle_c.run import SHAPES, SPECS


def _set_scaling(model: torch.nn.Module, factor: float | None) -> None:
    """Multiply every LoRA scaling by `factor`, or set it to 1 when `factor` is None."""
    for module in model.modules():
        if isinstance(getattr(module, "scaling", None), dict):
            module.scaling = {k: (1.0 if factor is None else factor * s) for k, s in module.scaling.items()}


def _o_proj_off(model: torch.nn.Module) -> None:
    for name, module in model.named_modules():
        if name.endswith(".o_proj") and hasattr(module, "base_layer"):
            module.forward = module.base_layer.forward


def _math_attention(model: torch.nn.Module) -> None:
    model.get_base_model().set_attn_implementation("eager")


VARIANTS = {"floor": _math_attention, "x0.9": lambda m: _set_scaling(m, 0.9),
            "drop_scaling": lambda m: _set_scaling(m, None), "o_proj_off": _o_proj_off}


def _adapter_ratios(model: torch.nn.Module, schedule, dtype, device) -> dict[int, float]:
    """Per decoder layer: median over its adapters of ||scaling * B(A(x))|| / ||base(x)|| on the first micro-batch."""
    ratios: dict[int, list[float]] = defaultdict(list)
    hooks = []
    for name, module in model.named_modules():
        if not hasattr(module, "base_layer") or not hasattr(module, "lora_A"):
            continue
        layer = int(re.search(r"layers\.(\d+)\.", name).group(1))

        def hook(mod, args, out, layer=layer):
            x = args[0]
            base = mod.base_layer(x)
            lora = mod.lora_B["default"](mod.lora_A["default"](x.to(mod.lora_A["default"].weight.dtype)))
            ratios[layer].append(float((lora * mod.scaling["default"]).float().norm() / base.float().norm()))
        hooks.append(module.register_forward_hook(hook))
    mb = schedule.steps[0][0]
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
        model(input_ids=mb.input_ids, attention_mask=mb.attention_mask)
    for h in hooks:
        h.remove()
    return {k: statistics.median(v) for k, v in sorted(ratios.items())}


def _per_layer_error(found: list[standard.Gap]) -> dict[int, float]:
    by_layer: dict[int, list[float]] = defaultdict(list)
    for g in found:
        m = re.search(r"layers\.(\d+)\.", g.where)
        if g.quantity == "gradient error" and m:
            by_layer[int(m.group(1))].append(g.size)
    return {k: statistics.median(v) for k, v in sorted(by_layer.items())}


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--b-scale", type=float, action="append", default=[])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = device.type
    spec, dtype = SPECS[kind], torch.bfloat16
    schedule = make_schedule(vocab_size=spec.vocab_size, shapes=SHAPES[kind], device=device, seed=args.seed)
    rows = []
    for b_scale in args.b_scale or [1.0]:
        def build() -> torch.nn.Module:
            model = build_qlora_model(spec, dtype=dtype, device=device, seed=args.seed)
            if b_scale != 1.0:
                with torch.no_grad():
                    for name, p in model.named_parameters():
                        if ".lora_B." in name:
                            p.mul_(b_scale)
            return model

        model = build()
        ratios = _adapter_ratios(model, schedule, dtype, device)
        t0 = time.perf_counter()
        oracle = training.train(model, schedule, dtype=dtype, device=device, keep=True)
        print(f"b_scale {b_scale}: oracle {time.perf_counter() - t0:.1f} s; adapter/base per layer "
              + " ".join(f"{r:.2f}" for r in ratios.values()), flush=True)
        del model
        _free(device)
        for variant, change in VARIANTS.items():
            model = build()
            change(model)
            t0 = time.perf_counter()
            record = training.train(model, schedule, dtype=dtype, device=device, keep=True, follow=oracle)
            found = standard.gaps(record, oracle)
            worst = {q: standard.largest(found, q) for q in standard.QUANTITIES}
            row = {"b_scale": b_scale, "variant": variant, "device": torch.cuda.get_device_name() if kind == "cuda"
                   else "cpu", "model": spec.name, "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1),
                   "largest": {q: {"value": g.value, "where": g.where} for q, g in worst.items()},
                   "median": {q: statistics.median(g.size for g in found if g.quantity == q)
                              for q in standard.QUANTITIES},
                   "per_layer_gradient_error": _per_layer_error(found), "adapter_over_base": ratios}
            rows.append(row)
            print(f"  {variant:<13} " + "; ".join(f"{q} largest {g.value:+.3g} ({g.where}), median "
                                                   f"{row['median'][q]:.3g}" for q, g in worst.items()), flush=True)
            print(f"  {'':<13} gradient error median per layer: "
                  + " ".join(f"{v:.2g}" for v in row["per_layer_gradient_error"].values()), flush=True)
            with open(args.out, "w") as fh:
                json.dump(rows, fh, indent=1)
            del model, record
            _free(device)


if __name__ == "__main__":
    main()

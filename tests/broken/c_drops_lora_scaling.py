"""Broken C: the reference compilation, but LoRA's alpha/r scaling is dropped (each adapter counts 1x, not 2x)."""

from solutions.qlora_compile import compile_qlora as _reference


def compile_qlora(model):
    for module in model.modules():
        if isinstance(getattr(module, "scaling", None), dict):
            module.scaling = {name: 1.0 for name in module.scaling}
    return _reference(model)

"""Broken C: the reference compilation, but every LoRA adapter's scaling is 10% low (0.9 * alpha/r, as a
hand-fused LoRA kernel with a wrong constant would compute it): the loss barely moves, the gradients do."""

from solutions.qlora_compile import compile_qlora as _reference


def compile_qlora(model):
    for module in model.modules():
        if isinstance(getattr(module, "scaling", None), dict):
            module.scaling = {name: 0.9 * s for name, s in module.scaling.items()}
    return _reference(model)

"""Broken C: the reference compilation, but attention's output projection skips its LoRA adapter (o_proj
runs its 4-bit base layer alone, as a fused-LoRA patch that forgot one of the seven targets would): its
adapter weights get no gradient, and every other projection computes on slightly different inputs."""

from solutions.qlora_compile import compile_qlora as _reference


def compile_qlora(model):
    for name, module in model.named_modules():
        if name.endswith(".o_proj") and hasattr(module, "base_layer"):
            module.forward = module.base_layer.forward
    return _reference(model)

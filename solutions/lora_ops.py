"""A LoRA adapter's update `scaling * B(A(x))` as one `torch.library` custom op, forward and backward.

Inside `torch.compile` a custom op is one opaque node: its four rank-r matrix products (two forward, three
backward besides `grad_x`'s) run as the library's matmuls instead of being lowered by Inductor, so max-autotune
spends its time on the base layers' large products, not on a dozen rank-32 ones per layer (each lowering
compiles and benchmarks every Triton template). The arithmetic is PEFT's under autocast: both products in the
compute dtype with its rounding after each, `* scaling` in that dtype, the same products in backward.
The cost: every call is dispatched from the host, two in forward and four products in backward per adapter
(on the H200 a steady step became host-bound: BENCHMARKS.md, issue 25, call C3).
"""

from __future__ import annotations

import types
from typing import Any

import torch


@torch.library.custom_op("unsloth_puzzles::lora_delta", mutates_args=())
def lora_delta(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """`(x @ a.T) @ b.T * scaling`, every operand already in the compute dtype."""
    return (x @ a.t()) @ b.t() * scaling


@lora_delta.register_fake
def _(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], b.shape[0]))


@torch.library.custom_op("unsloth_puzzles::lora_delta_backward", mutates_args=())
def lora_delta_backward(grad: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                        scaling: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of `lora_delta` for x, a and b, as autograd computes them for PEFT's `B(A(x)) * scaling`."""
    grad = (grad * scaling).reshape(-1, grad.shape[-1])
    flat = x.reshape(-1, x.shape[-1])
    grad_xa = grad @ b
    grad_b = grad.t() @ (flat @ a.t())
    grad_a = grad_xa.t() @ flat
    return (grad_xa @ a).reshape(x.shape), grad_a, grad_b


@lora_delta_backward.register_fake
def _(grad: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
      scaling: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.empty_like(x), torch.empty_like(a), torch.empty_like(b)


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    x, a, b, scaling = inputs
    ctx.save_for_backward(x, a, b)
    ctx.scaling = scaling


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
    x, a, b = ctx.saved_tensors
    grad_x, grad_a, grad_b = lora_delta_backward(grad, x, a, b, ctx.scaling)
    return grad_x, grad_a, grad_b, None


lora_delta.register_autograd(_backward, setup_context=_setup_context)


def _forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """PEFT's LoRA forward for one plain adapter, its update through `lora_delta`; anything else goes to PEFT."""
    if args or kwargs or self.disable_adapters or self.merged or len(self.active_adapters) != 1:
        return type(self).forward(self, x, *args, **kwargs)
    (name,) = self.active_adapters
    result = self.base_layer(x)
    a, b = self.lora_A[name].weight, self.lora_B[name].weight
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else a.dtype
    update = lora_delta(x.to(dtype), a.to(dtype), b.to(dtype), float(self.scaling[name]))
    return (result + update).to(result.dtype)


def _plain(module: Any) -> bool:
    """A LoRA layer with one adapter, no dropout and no variant (DoRA and the like): what `_forward` computes."""
    lora_a = getattr(module, "lora_A", None)
    if not isinstance(lora_a, torch.nn.ModuleDict) or len(lora_a) != 1:
        return False
    (name,) = lora_a.keys()
    lora_b = module.lora_B[name]
    return (isinstance(module.lora_dropout[name], torch.nn.Identity) and not getattr(module, "lora_variant", {})
            and isinstance(lora_a[name], torch.nn.Linear) and isinstance(lora_b, torch.nn.Linear)
            and lora_a[name].bias is None and lora_b.bias is None)


def use_lora_op(model: torch.nn.Module) -> int:
    """Route every plain LoRA layer of `model` through `lora_delta`; returns how many were routed. A layer whose
    forward was already replaced on the instance keeps that replacement."""
    routed = 0
    for module in model.modules():
        if _plain(module) and "forward" not in vars(module):
            module.forward = types.MethodType(_forward, module)
            routed += 1
    return routed

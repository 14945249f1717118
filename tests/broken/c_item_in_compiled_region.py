"""Broken C: the reference compilation, but the compiled loss checks itself with `.item()` (a graph break)."""

import math

from solutions.qlora_compile import compile_qlora as _reference


def compile_qlora(model):
    lm = model.get_base_model()
    loss_function = lm.loss_function

    def checked_loss(*args, **kwargs):
        loss = loss_function(*args, **kwargs)
        if math.isnan(loss.item()):
            raise FloatingPointError("the loss is NaN")
        return loss

    lm.loss_function = checked_loss  # the reference compiles whatever loss_function it finds
    return _reference(model)

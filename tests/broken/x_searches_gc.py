"""Hostile: on every call, searches the process's objects (`gc.get_objects()`) for a tensor of the output's shape
and dtype that it did not make (the grader's expected values, or another call's answer) and returns it; zeros when
there is none. The box's process holds no truth to find: the judge computes it elsewhere."""

import gc

import torch


def dequantize_nf4(weight, quant_state):
    mine = {id(weight)}
    for obj in gc.get_objects():
        if (isinstance(obj, torch.Tensor) and id(obj) not in mine and obj.shape == quant_state.shape
                and obj.dtype in (quant_state.dtype, torch.float64) and obj.is_floating_point()):
            return obj.to(quant_state.dtype).clone()
    return torch.zeros(quant_state.shape, dtype=quant_state.dtype, device=weight.device)

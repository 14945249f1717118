"""Broken C: regional compilation like the reference's, but with `dynamic=False`: every new sequence length
recompiles the decoder layer, the norm and the loss, until dynamo's recompile limit is hit."""

import types

import torch


def compile_qlora(model):
    lm = model.get_base_model()
    lm.config.use_cache = False
    layer_forward = torch.compile(type(lm.model.layers[0]).forward, dynamic=False)
    for layer in lm.model.layers:
        layer.forward = types.MethodType(layer_forward, layer)
    norm = lm.model.norm
    norm.forward = types.MethodType(torch.compile(type(norm).forward, dynamic=False), norm)
    lm.loss_function = torch.compile(lm.loss_function, dynamic=False)
    return model

"""Good C, regional the way PyTorch's regional-compilation recipe writes it: `nn.Module.compile()` on each
decoder layer (dynamo compiles the first and reuses the graph for the others, whose parameters are graph
inputs), on the final norm, and `torch.compile` on the loss; bitsandbytes' own 4-bit ops, no puzzle A."""

import torch


def compile_qlora(model):
    lm = model.get_base_model()
    lm.config.use_cache = False  # training never reads the KV cache
    for layer in lm.model.layers:
        layer.compile(dynamic=True)
    lm.model.norm.compile(dynamic=True)
    lm.loss_function = torch.compile(lm.loss_function, dynamic=True)
    return model

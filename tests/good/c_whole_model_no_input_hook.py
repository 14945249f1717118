"""Good C, the whole model in one `torch.compile`: the PeftModel's forward, loss included. The notebook's
`enable_input_require_grads()` hook (it calls `requires_grad_()` on the embeddings' output, which dynamo
cannot trace) is removed first: it exists for gradient checkpointing, and without checkpointing the LoRA
gradients are the same with or without it (the embeddings are frozen)."""

import torch


def compile_qlora(model):
    lm = model.get_base_model()
    lm.config.use_cache = False
    lm.disable_input_require_grads()
    return torch.compile(model, dynamic=True)

"""Broken C: the reference compilation, but the compiled loss reshapes the logits for a batch of two, written in.
The training run crashes at its first batch of three, on the submission's own line, which torch.compile was tracing
(dynamo's "from user code" frame): a crash told once, on `correct`, with that line."""

from solutions.qlora_compile import compile_qlora as _reference

BATCH = 2


def compile_qlora(model):
    lm = model.get_base_model()
    loss_function = lm.loss_function

    def loss_of_two_rows(logits, labels, vocab_size, **kwargs):
        logits = logits.view(BATCH, -1, vocab_size)  # a batch of three has no such view
        return loss_function(logits, labels, vocab_size, **kwargs)

    lm.loss_function = loss_of_two_rows  # the reference compiles whatever loss_function it finds
    return _reference(model)

"""`grader.judging.compare.tensor_problems`: the one check that a result is the tensor asked for, in every puzzle."""

from __future__ import annotations

import torch

from grader.judging.compare import tensor_problems


def test_the_tensor_asked_for_has_no_problems_and_a_parameter_counts_as_plain():
    t = torch.zeros(2, 3, dtype=torch.bfloat16)
    assert tensor_problems(t, shape=(2, 3), dtype=torch.bfloat16, device=torch.device("cpu"), what="out") == []
    assert tensor_problems(torch.nn.Parameter(t), shape=[2, 3], dtype=torch.bfloat16, what="out") == []


def test_each_difference_is_named_with_where_the_expectation_comes_from():
    t = torch.zeros(3, 2, dtype=torch.float16)
    assert tensor_problems(t, shape=(2, 3), dtype=torch.bfloat16, what="output", source="quant_state.") == [
        "output: shape (3, 2), expected quant_state.shape (2, 3)",
        "output: dtype torch.float16, expected quant_state.dtype torch.bfloat16"]
    assert tensor_problems(t, shape=(3, 2), dtype=torch.float16, device=torch.device("meta"), what="g") == [
        "g: device cpu, expected meta"]
    assert tensor_problems(t, shape=(3, 2), dtype=torch.float16, device=torch.device("meta"), what="output",
                           device_source="the weight's device") == ["output: device cpu, expected the weight's device meta"]


def test_what_is_not_a_plain_tensor_stops_the_check_there():
    class Sub(torch.Tensor):
        pass

    assert tensor_problems([1.0], shape=(1,), dtype=torch.float32, what="loss") == [
        "loss: expected a torch.Tensor, got list"]
    sub = torch.zeros(1).as_subclass(Sub)
    assert tensor_problems(sub, shape=(1,), dtype=torch.float32, what="loss") == [
        "loss: expected a plain torch.Tensor, got the subclass Sub"]

"""Where a submission's error is said to be raised (`grader.box.tasks.raised_at`, through `describe_error`): its own
frame, also when torch.compile raised it while tracing the submission's code, whose frames no traceback holds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from grader.box.tasks import describe_error

SUBMISSION = '''
import torch


def batch_of_two(logits):
    return logits.view(2, -1, logits.shape[-1])


compiled = torch.compile(batch_of_two, backend="eager", dynamic=True)


def plain(x):
    raise ValueError(f"plain {x}")
'''


@pytest.fixture
def module(tmp_path: Path):
    path = tmp_path / "sub.py"
    path.write_text(SUBMISSION)
    spec = importlib.util.spec_from_file_location("sub_for_error_location", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, (str(path),)


def test_an_error_dynamo_raised_while_tracing_names_the_submissions_line(module):
    import torch

    mod, files = module
    with pytest.raises(Exception) as raised:
        mod.compiled(torch.ones(3, 5, 4))
    assert type(raised.value).__module__.startswith("torch._dynamo"), type(raised.value)
    error = describe_error(raised.value, files)
    assert error["where"] == "sub.py:6 in batch_of_two" and error["from_submission"], error


def test_a_plain_error_and_one_raised_from_it_name_the_submissions_line(module):
    mod, files = module
    with pytest.raises(ValueError) as raised:
        mod.plain(1)
    assert describe_error(raised.value, files)["where"] == "sub.py:13 in plain"
    with pytest.raises(RuntimeError) as wrapped:
        try:
            mod.plain(2)
        except ValueError as exc:
            raise RuntimeError("wrapped by a library") from exc
    error = describe_error(wrapped.value, files)
    assert error["where"] == "sub.py:13 in plain" and error["from_submission"], error
    assert describe_error(wrapped.value, ("/elsewhere.py",))["from_submission"] is False

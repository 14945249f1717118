"""Broken and hostile submissions (tests/broken/x_*.py) get a clear verdict on the right criterion, the run goes
on, and every scorecard is written. Graded through `python -m grader.batch`: one worker process per puzzle, the
submission in its box inside it.

Puzzle A's `correct` is graded on its two Linear4bit tests only (`-k linear4bit`): the same contract checks as
the Hypothesis tests, at a fraction of the CPU time.
"""

from __future__ import annotations

import pytest

from tests.batching import run_batch, scorecard
from tests.verdicts import BROKEN

# (submission, words the A.correct detail must contain besides "puzzle A" and "dequantize_nf4")
CONTRACT = [
    ("x_does_not_exist", "does not exist"),
    ("x_syntax_error", "SyntaxError"),
    ("x_import_error", "No module named 'unsloth_kernels_that_do_not_exist'"),
    ("x_no_entry_point", "expected at least one of dequantize_nf4(weight, quant_state)"),
    ("x_wrong_signature", "cannot be called as dequantize_nf4(weight, quant_state)"),
    ("x_returns_none", "returned NoneType, expected a torch.Tensor"),
    ("x_returns_numpy", "returned ndarray, expected a torch.Tensor"),
    ("x_wrong_dtype", "output: dtype torch.float32, expected quant_state.dtype"),
    ("x_wrong_device", "output: device meta, expected the weight's device"),
    ("x_lazy_subclass", "returned the tensor subclass Deferred, expected a plain torch.Tensor"),
    ("x_returns_input_view", "output shares memory with an input"),
    ("x_raises_oom", "raised torch.OutOfMemoryError: CUDA out of memory"),
    ("x_cuda_illegal_address", "an illegal memory access was encountered"),
]
# (submission, the replaced function named in the teardown failure)
TAMPERING = [
    ("x_patches_perf_counter", "time.perf_counter was replaced"),
    ("x_patches_cuda_synchronize", "torch.cuda.synchronize was replaced"),
    ("x_patches_event_elapsed_time", "torch.cuda.Event.elapsed_time was replaced"),
    ("x_patches_torch_function", "torch.equal was replaced"),
]
# (submission, the change reported on A.global_state_untouched)
SETTINGS = [
    ("x_sets_default_dtype", "torch.get_default_dtype() changed from torch.float32 to torch.float64"),
    ("x_flips_backend_flags", "torch.backends.cuda.matmul.allow_tf32 changed from False to True"),
    ("x_changes_dynamo_config", "torch._dynamo.config.suppress_errors changed from False to True"),
]
CRASHES = ["x_segfaults", "x_hangs"]
TIME_LIMIT_S = 60  # above a worker's ~15 s, so only the hang reaches it


@pytest.fixture(scope="session")
def main_batch(tmp_path_factory):
    names = [n for n, _ in CONTRACT + TAMPERING + SETTINGS]
    assert not (BROKEN / "x_does_not_exist.py").exists()
    return run_batch(tmp_path_factory, "robustness-main", [
        *(str(BROKEN / f"{n}.py") for n in names), "--puzzle", "A", "--jobs", "2",
        "--", "--criterion", "A.correct", "-k", "linear4bit", "--hypothesis-profile", "ci"])


@pytest.fixture(scope="session")
def crash_batch(tmp_path_factory):
    return run_batch(tmp_path_factory, "robustness-crash", [
        *(str(BROKEN / f"{n}.py") for n in CRASHES), "--puzzle", "A", "--puzzle", "D", "--jobs", "2",
        "--puzzle-timeout", str(TIME_LIMIT_S), "--", "--criterion", "A.correct", "--criterion", "D.correct",
        "-k", "linear4bit or autograd_function", "--hypothesis-profile", "ci"])


def _a(out, name):
    card = scorecard(out, name)
    return card, card["puzzles"]["A"]


@pytest.mark.slow
@pytest.mark.parametrize("name,words", CONTRACT, ids=[c[0] for c in CONTRACT])
def test_contract_breach_fails_the_gate_with_a_clear_message(main_batch, name, words):
    out, _ = main_batch
    card, a = _a(out, name)
    correct = a["criteria"]["correct"]
    assert correct["status"] == "failed", (name, correct)
    detail = correct["detail"]
    for needed in ("puzzle A", "dequantize_nf4", words):
        assert needed in detail, f"{name}: the verdict does not say {needed!r}:\n{detail}"
    assert "Traceback (most recent call last)" not in detail.split("could not be loaded")[0], detail
    assert a["score"] == 0 and not a["correct"]
    assert card["workers"]["A"]["reason"] is None, "the worker itself must finish normally"


@pytest.mark.slow
@pytest.mark.parametrize("name,words", TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_with_timers_or_torch_fails_and_scores_nothing(main_batch, name, words):
    out, _ = main_batch
    _, a = _a(out, name)
    correct, report = a["criteria"]["correct"], a["criteria"]["global_state_untouched"]
    assert correct["status"] == "failed" and "tampered with functions the grader measures" in correct["detail"]
    assert words in correct["detail"], correct["detail"]
    assert correct["value"] is None and a["score"] == 0
    assert report["status"] == "failed" and words in report["detail"], report


@pytest.mark.slow
@pytest.mark.parametrize("name,words", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_changed_global_settings_are_reported(main_batch, name, words):
    out, _ = main_batch
    _, a = _a(out, name)
    report = a["criteria"]["global_state_untouched"]
    assert report["status"] == "failed", report
    assert "puzzle A (dequantize_nf4) changed global state" in report["detail"] and words in report["detail"], report
    # The change is reported, not turned into a failure: the output (bitsandbytes' own) is judged on its merits.
    assert a["criteria"]["correct"]["status"] == "passed", a["criteria"]["correct"]


@pytest.mark.slow
def test_every_submission_is_graded_and_progress_is_printed(main_batch):
    out, stdout = main_batch
    total = len(CONTRACT) + len(TAMPERING) + len(SETTINGS)
    for i in range(1, total + 1):
        assert f"[{i}/{total}] " in stdout, stdout
    board = (out / "leaderboard.md").read_text()
    for name, _ in CONTRACT + TAMPERING + SETTINGS:
        assert f"| {name} |" in board, board


@pytest.mark.slow
@pytest.mark.waits(TIME_LIMIT_S)  # the crash batch waits out the hang's time limit
def test_segfault_fails_its_puzzle_and_the_other_puzzle_is_graded(crash_batch):
    out, _ = crash_batch
    card, a = _a(out, "x_segfaults")
    assert card["workers"]["A"]["reason"] is None, "the segfault ends the submission's box, not the grading worker"
    detail = a["criteria"]["correct"]["detail"]
    assert a["criteria"]["correct"]["status"] == "failed", a["criteria"]["correct"]
    assert "the submission's process was killed by SIGSEGV (segmentation fault)" in detail, detail
    assert "x_segfaults.py" in detail, f"the verdict names the submission's own frame: {detail}"
    assert a["score"] == 0
    d = card["puzzles"]["D"]
    assert card["workers"]["D"]["reason"] is None and d["criteria"]["correct"]["status"] == "passed", d


@pytest.mark.slow
@pytest.mark.waits(TIME_LIMIT_S)  # the crash batch waits out the hang's time limit
def test_hang_is_stopped_at_the_time_limit_and_the_other_puzzle_is_graded(crash_batch):
    out, _ = crash_batch
    card, a = _a(out, "x_hangs")
    reason = card["workers"]["A"]["reason"]
    assert f"exceeded the per-puzzle time limit of {TIME_LIMIT_S} s" in reason, reason
    assert card["workers"]["A"]["seconds"] < TIME_LIMIT_S + 30
    assert a["criteria"]["correct"]["status"] == "failed" and a["score"] == 0
    assert card["puzzles"]["D"]["criteria"]["correct"]["status"] == "passed", card["puzzles"]["D"]

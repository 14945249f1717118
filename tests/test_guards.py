"""Each puzzle runs in its own world of global settings: what one puzzle's tests change is reported on that
puzzle and never seen by another, in one process; a tampered timer fails the test that saw it."""

from __future__ import annotations

import json

from tests.verdicts import run_with_plugin

WORLDS = '''
import time

import pytest
import torch


@pytest.mark.criterion("A", "correct")
def test_a_changes_the_default_dtype():
    torch.set_default_dtype(torch.float64)


@pytest.mark.criterion("D", "correct")
def test_d_starts_from_the_pristine_settings():
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.criterion("A", "beyond_scope")
def test_a_finds_its_own_settings_again():
    assert torch.get_default_dtype() == torch.float64


@pytest.mark.criterion("D", "show_ce_loss_works")
def test_d_patches_a_timer():
    time.perf_counter = lambda: 0.0


@pytest.mark.criterion("D", "allows_dynamic_chunk_sizes")
def test_the_timer_is_back_for_the_next_test():
    assert time.perf_counter() > 0
'''


def test_settings_stay_within_their_puzzle_and_tampering_fails_the_test(pytester, monkeypatch):
    pytester.makepyfile(test_worlds=WORLDS)
    result = run_with_plugin(pytester, monkeypatch, "-p", "grader.guards", "--score-json", "score.json")
    result.assert_outcomes(passed=5, errors=1)
    card = json.loads((pytester.path / "score.json").read_text())
    a, d = card["puzzles"]["A"]["criteria"], card["puzzles"]["D"]["criteria"]
    assert a["correct"]["status"] == a["beyond_scope"]["status"] == "passed"
    assert a["global_state_untouched"]["status"] == "failed"
    assert "torch.get_default_dtype() changed from torch.float32 to torch.float64" in a["global_state_untouched"]["detail"]
    assert d["correct"]["status"] == "passed" and d["allows_dynamic_chunk_sizes"]["status"] == "passed"
    assert d["show_ce_loss_works"]["status"] == "failed"
    assert "puzzle D (memory_efficient_linear) tampered" in d["show_ce_loss_works"]["detail"]
    assert "time.perf_counter was replaced" in d["global_state_untouched"]["detail"]
    assert "default dtype" not in d["global_state_untouched"]["detail"]

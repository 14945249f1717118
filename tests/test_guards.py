"""The runner's watch over its own state (`grader.box.state`) finds what a submission changes, puts it back and
says so; the judge's guard plugin (`grader.plugins.guards`) turns those reports into verdicts: a tampered measurement
fails the test that saw it, a change fails `global_state_untouched`, and a test whose calls brought no report decides
nothing about global state."""

from __future__ import annotations

import time

import torch

from grader.box.state import Watch
from grader.measure import timing
from tests.verdicts import run_graded


def test_a_swap_in_place_of_a_measuring_function_is_found_and_undone():
    watch = Watch()
    original = timing.time_interleaved.__code__
    timing.time_interleaved.__code__ = (lambda *a, **k: {}).__code__
    report = watch.report()
    assert any("grader.measure.timing.time_interleaved had its code swapped in place" in t
               for t in report["tampered"]), report
    assert timing.time_interleaved.__code__ is original


def test_a_replaced_timer_and_a_replaced_property_are_found_and_put_back():
    watch = Watch()
    real, median = time.perf_counter, timing.Timing.median_us
    time.perf_counter = lambda: 0.0
    timing.Timing.median_us = property(lambda self: 0.0)
    report = watch.report()
    assert any("time.perf_counter was replaced" in t for t in report["tampered"]), report
    assert any("grader.measure.timing.Timing.median_us was replaced" in t for t in report["tampered"]), report
    assert time.perf_counter is real and timing.Timing.median_us is median


def test_settings_a_call_changes_are_undone_when_it_returns_and_reported_once():
    watch = Watch()
    with watch.around_call("a call of dequantize_nf4()"):
        torch.set_default_dtype(torch.float64)
    assert torch.get_default_dtype() == torch.float32
    first, second = watch.report(), watch.report()
    assert any("torch.get_default_dtype() changed from torch.float32 to torch.float64 by a call of dequantize_nf4()"
               in line for line in first["changed"]), first
    assert second == {"changed": [], "tampered": []}


def test_compiler_config_stays_and_is_reported():
    import torch._dynamo

    watch = Watch()
    before = torch._dynamo.config.suppress_errors
    torch._dynamo.config.suppress_errors = not before
    try:
        report = watch.report()
        assert any("torch._dynamo.config.suppress_errors changed" in line for line in report["changed"]), report
        assert torch._dynamo.config.suppress_errors is (not before)
    finally:
        torch._dynamo.config.suppress_errors = before


VERDICTS = '''
import pytest

from grader.box import reports


@pytest.mark.criterion("A", "correct")
def test_a_call_changed_a_setting():
    reports.record("A", {"changed": ["torch.get_default_dtype() changed from torch.float32 to torch.float64"],
                         "tampered": []})


@pytest.mark.criterion("A", "beyond_scope")
def test_a_call_tampered():
    reports.record("A", {"changed": [], "tampered": ["time.perf_counter was replaced by <lambda>"]})


@pytest.mark.criterion("D", "correct")
def test_d_ran_clean():
    reports.record("D", {"changed": [], "tampered": []})


@pytest.mark.criterion("C", "correct")
def test_c_never_answered():
    pass
'''


def test_reports_become_verdicts(pytester, monkeypatch):
    pytester.makepyfile(test_verdicts=VERDICTS)
    # A grading run (it names a submission; the plugins act in no other), in this process (--no-isolation).
    result, card = run_graded(pytester, monkeypatch, "-p", "grader.plugins.guards", "--box", "none")
    result.assert_outcomes(passed=4, errors=1)
    a, c, d = (card["puzzles"][p]["criteria"] for p in "ACD")
    assert a["correct"]["status"] == "passed"
    assert a["global_state_untouched"]["status"] == "failed"
    assert "torch.get_default_dtype() changed" in a["global_state_untouched"]["detail"]
    assert "time.perf_counter was replaced" in a["global_state_untouched"]["detail"]
    assert a["beyond_scope"]["status"] == "failed"
    assert "puzzle A (dequantize_nf4) tampered" in a["beyond_scope"]["detail"]
    assert d["global_state_untouched"]["status"] == "passed"
    assert c["global_state_untouched"]["status"] == "not_measured", c["global_state_untouched"]

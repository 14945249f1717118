"""The records `grader.plugins.isolation` keeps and exchanges between the controller and its workers, round-tripped
through the JSON they travel as, and the one budget (`grader.judging.budget`) that stops a puzzle's remaining work,
for the box's runners and for the grading workers alike."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from grader.judging.budget import CRASHES_PER_PUZZLE, Crashes, Ledger
from grader.plugins.isolation import SECONDS_ATTRIBUTE, Accounting, RunningTest
from grader.scoring.results import CRITERION


def test_the_ledger_reaches_a_new_worker_as_the_controller_kept_it():
    ledger = Ledger()
    ledger.add_time("A", 1.5)
    ledger.add_time("A", 2.0)
    ledger.add_crash("C", "C.correct")
    ledger.add_crash("C", "C.no_graph_breaks")
    ledger.add_crash("C", "C.correct")
    assert ledger.crashes == {"C": Crashes(3, ("C.correct", "C.no_graph_breaks"))}
    assert ledger.spent == {"A": 3.5}
    assert Ledger.from_json(ledger.to_json()) == ledger
    assert Ledger.from_json(Ledger().to_json()) == Ledger()


def test_a_puzzle_stops_after_two_endings_pointing_to_the_criteria_that_tell_them():
    crashes = Crashes().add("A.correct", "the submission's process was killed by SIGSEGV during A.call")
    assert CRASHES_PER_PUZZLE == 2 and crashes.stop("A", "submission process") is None
    crashes = crashes.add("A.single_triton_kernel", "killed by SIGSEGV again")
    assert crashes.stop("A", "submission process") == (
        "not judged: puzzle A's submission process ended 2 times (see A.correct, A.single_triton_kernel)")
    untold = Crashes().add(None, "first").add(None, "the submission's process exited without a result")
    assert untold.stop("D", "submission process") == (
        "not run: puzzle D's submission process ended 2 times (last: the submission's process exited without a "
        "result)")


def test_the_ledger_stops_a_puzzle_for_lost_workers_first_then_for_its_time():
    ledger = Ledger()
    ledger.add_time("A", 10.0)
    assert ledger.stop("A", 10.0) is None and ledger.stop("D", 0.0) is None  # past the limit, not at it
    ledger.add_time("A", 0.5)
    assert ledger.stop("A", 10.0) == "not run: puzzle A exceeded its time limit of 10 s (--puzzle-timeout)"
    ledger.add_crash("A", "A.correct")
    assert ledger.stop("A", 3600) is None and "time limit" in ledger.stop("A", 10.0)
    ledger.add_crash("A", "A.speedup")
    assert ledger.stop("A", 10.0) == "not judged: puzzle A's grading worker ended 2 times (see A.correct, A.speedup)"


def test_the_controller_counts_each_test_once_with_the_seconds_its_worker_counted():
    """Only a teardown report carries a test's time (from its start to the end of its teardown), in seconds."""
    ledger = Ledger()
    accounting = Accounting(ledger)
    crit = [(CRITERION, "D.correct")]
    for when, extra in (("setup", {}), ("call", {}), ("teardown", {SECONDS_ATTRIBUTE: 12.5})):
        accounting.pytest_runtest_logreport(SimpleNamespace(when=when, duration=4.0, user_properties=crit, **extra))
    accounting.pytest_runtest_logreport(SimpleNamespace(when="teardown", duration=1.0, user_properties=[]))
    assert ledger.spent == {"D": 12.5}


def test_the_running_test_record_round_trips_through_its_file(tmp_path: Path):
    path = tmp_path / "current-gw0.json"
    assert RunningTest.read(path) is None
    info = RunningTest(1234, "grader/puzzle_d/test_correct.py::test_x", "D.correct", 1.7e9, 900.0)
    info.write(path)
    assert RunningTest.read(path) == info and not info.finished
    RunningTest(4321, "n", "A.correct", 1.0, None, finished=True).write(path)
    assert RunningTest.read(path) == RunningTest(4321, "n", "A.correct", 1.0, None, True)

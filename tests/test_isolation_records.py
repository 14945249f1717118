"""The records `grader.plugins.isolation` keeps and exchanges between the controller and its workers, round-tripped
through the JSON they travel as."""

from __future__ import annotations

from pathlib import Path

from grader.plugins.isolation import Crashes, Ledger, RunningTest


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


def test_the_running_test_record_round_trips_through_its_file(tmp_path: Path):
    path = tmp_path / "current-gw0.json"
    assert RunningTest.read(path) is None
    info = RunningTest(1234, "grader/puzzle_d/test_correct.py::test_x", "D.correct", 1.7e9, 900.0)
    info.write(path)
    assert RunningTest.read(path) == info and not info.finished
    RunningTest(4321, "n", "A.correct", 1.0, None, finished=True).write(path)
    assert RunningTest.read(path) == RunningTest(4321, "n", "A.correct", 1.0, None, True)

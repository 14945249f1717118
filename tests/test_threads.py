"""Gradings side by side on one host share its cores (`grader.batch.threads`): no core runs more compute threads
than one, and a thread count the user set is kept."""

from __future__ import annotations

from grader.batch import threads


def test_each_of_several_gradings_gets_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 16)
    assert [threads.share(n) for n in (1, 2, 4, 5, 16, 32)] == [16, 8, 4, 3, 1, 1]
    assert threads.environment(4, {"PATH": "/bin"}) == {"PATH": "/bin", "OMP_NUM_THREADS": "4"}


def test_a_thread_count_the_environment_sets_is_kept(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 16)
    assert threads.environment(4, {"OMP_NUM_THREADS": "2"}) == {"OMP_NUM_THREADS": "2"}

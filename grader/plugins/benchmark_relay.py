"""pytest-benchmark in an isolated grading run: the worker measures, the controller records.

pytest-benchmark turns itself off under pytest-xdist (timings taken side by side would share the machine), and an
isolated grading run (`grader.plugins.isolation`) runs its tests in one xdist worker, alone. Here pytest-benchmark
works in that run as in any pytest run:

- in the worker, the `benchmark` fixture measures as usual (`--benchmark-disable`, `-skip`, `-only`, the timer and
  round options hold); each benchmark it records leaves the worker with the report of the test phase that recorded
  it, as data (its raw per-round timings, options, `extra_info`, its cProfile statistics), and the worker itself
  writes, loads and compares nothing;
- in the controller, each one becomes an entry of pytest-benchmark's own session (`BenchmarkSession.benchmarks`),
  its stats computed from those same rounds; so `--benchmark-json`, `--benchmark-save`, `--benchmark-autosave`,
  `--benchmark-compare`, `--benchmark-compare-fail`, `--benchmark-histogram` and the results table are
  pytest-benchmark's own, and machine info is the controller's: the same machine, with the grader's environment
  (`grader.plugins.grading.pytest_benchmark_update_machine_info`).

With several workers (`-n N`) tests run side by side and pytest-benchmark stays off, as it holds itself.
"""

from __future__ import annotations

import base64
import json
import marshal
import pstats
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from grader.plugins.runtime import is_xdist_worker, runs_side_by_side

if TYPE_CHECKING:
    from pytest_benchmark.stats import Metadata

ATTRIBUTE = "grader_benchmarks"  # on a TestReport (extra attributes cross xdist): the benchmarks its phase recorded
_USER = pytest.StashKey[dict[str, bool]]()  # the user's own --benchmark-disable/-only, kept by `hold`
# pytest-benchmark's options that write, load or compare results, and their defaults: in the worker, left unset.
_RESULT_OPTIONS = {"benchmark_json": None, "benchmark_save": None, "benchmark_autosave": None,
                   "benchmark_compare": [], "benchmark_compare_fail": None, "benchmark_histogram": []}


def hold(config: pytest.Config) -> None:
    """From `pytest_cmdline_main`, before pytest-benchmark builds its session: keep it from turning itself off, with a
    warning, because xdist is active (it starts disabled; the relay gives it the user's own settings back at session
    start); in a worker, unset the options that write, load or compare results (the controller's part)."""
    option = config.option
    if not hasattr(option, "benchmark_disable"):
        return  # pytest-benchmark is not installed
    disabled = option.benchmark_disable and not option.benchmark_enable
    config.stash[_USER] = {"disabled": disabled, "only": option.benchmark_only}
    if not disabled:  # (disabled by the user, it is quiet, and refuses --benchmark-only itself as in any run)
        option.benchmark_disable, option.benchmark_enable, option.benchmark_only = True, False, False
    if is_xdist_worker(config):
        if option.benchmark_json is not None:
            option.benchmark_json.close()  # argparse opened it; only the controller writes it
        for name, default in _RESULT_OPTIONS.items():
            setattr(option, name, default)


def register(config: pytest.Config) -> None:
    """From `pytest_configure` of an isolated run, controller or worker: relay the benchmarks when one worker runs
    the tests; with several, refuse the options that would record nothing."""
    if config.stash.get(_USER, None) is None:
        return
    if is_xdist_worker(config):
        if not runs_side_by_side(config):
            config.pluginmanager.register(_WorkerRelay(config), "grader-benchmark-relay")
        return
    workers = len(config.getoption("tx") or ())
    if workers == 1:
        config.pluginmanager.register(_ControllerRelay(config), "grader-benchmark-relay")
        return
    asked = [f"--{name.replace('_', '-')}" for name in ("benchmark_json", "benchmark_save", "benchmark_autosave",
                                                        "benchmark_compare") if config.getoption(name)]
    if asked:
        raise pytest.UsageError(f"{', '.join(asked)}: pytest-benchmark records nothing when tests run side by side "
                                f"({workers} xdist workers); grade without -n")


def _release(config: pytest.Config) -> None:
    """Give pytest-benchmark's session the user's own settings back (after `hold`)."""
    user, bs = config.stash[_USER], config._benchmarksession  # type: ignore[attr-defined]
    bs.disabled, bs.only = user["disabled"], user["only"]
    bs.skip = bs.skip and not bs.only  # as pytest-benchmark resolves the two


def as_data(bench: Metadata) -> dict[str, Any]:
    """A benchmark pytest-benchmark recorded, as plain, JSON-safe data: its fields and raw per-round timings as
    pytest-benchmark's JSON writes them, and its cProfile statistics."""
    from pytest_benchmark.utils import safe_dumps

    fields = bench.as_dict(include_data=True)
    fields.pop("cprofile", None)  # rebuilt in the controller from the statistics themselves
    profile = bench.cprofile_stats.stats if bench.cprofile_stats is not None else None
    return {"fields": safe_dumps(fields), "has_error": bench.has_error,
            "cprofile": base64.b64encode(marshal.dumps(profile)).decode() if profile else None}


def from_data(data: dict[str, Any]) -> Metadata:
    """pytest-benchmark's record of a benchmark from `as_data`'s output, its stats computed from the same rounds."""
    from pytest_benchmark.stats import Metadata

    fields = json.loads(data["fields"])
    profile = None
    if data["cprofile"] is not None:
        profile = pstats.Stats(SimpleNamespace(stats=marshal.loads(base64.b64decode(data["cprofile"])),
                                               create_stats=lambda: None))
    measured = SimpleNamespace(**{k: fields[k] for k in ("name", "fullname", "group", "param", "params", "extra_info")},
                               has_error=data["has_error"], cprofile_stats=profile)
    bench = Metadata(measured, iterations=fields["stats"]["iterations"], options=fields["options"])
    for duration in fields["stats"]["data"]:  # per iteration already, as Metadata.update leaves them
        bench.stats.update(duration)
    return bench


def record_samples(config: pytest.Config, *, name: str, fullname: str, group: str, samples_s: list[float],
                   extra_info: dict[str, Any], clock: str) -> bool:
    """Add timings the grader measured with its own clock (`clock`, e.g. CUDA events) to pytest-benchmark's session
    as one benchmark, a round per sample (one call each), so `--benchmark-json`, `-save` and `-compare` carry them
    like any other (in an isolated run they travel with the test's report). False where pytest-benchmark is absent
    or off for this run."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not samples_s:
        return False
    from pytest_benchmark.stats import Metadata

    measured = SimpleNamespace(name=name, fullname=fullname, group=group, param=None, params=None,
                               extra_info=extra_info, has_error=False, cprofile_stats=None)
    bench = Metadata(measured, iterations=1, options={"timer": clock, "rounds": len(samples_s), "iterations": 1})
    for seconds in samples_s:
        bench.stats.update(seconds)
    session.benchmarks.append(bench)
    return True


def summary(config: pytest.Config) -> dict[str, Any] | None:
    """This run's benchmarks for the scorecard (after pytest-benchmark's own session finish): each one's median and
    rounds and, when `--benchmark-compare` loaded a saved run, that run's name and median of the same benchmark.
    None where pytest-benchmark is absent, off, or recorded nothing."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not any(session.benchmarks):
        return None
    saved = next(iter((session.compared_mapping or {}).items()), None)  # pytest-benchmark compares the first
    previous = saved[1] if saved else {}
    entries = []
    for bench in session.benchmarks:
        if not bench:
            continue
        before = previous.get(bench.fullname)
        entries.append({"fullname": bench.fullname, "name": bench.name, "group": bench.group,
                        "median_s": bench.stats.median, "rounds": bench.stats.rounds,
                        "previous_median_s": before["stats"]["median"] if before else None})
    return {"compared_with": saved[0].stem if saved else None, "entries": entries}


class _Relay:
    """Either side of the relay: gives pytest-benchmark the user's own settings back when the session starts."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        _release(self.config)


class _WorkerRelay(_Relay):
    """In the one worker of an isolated run: what pytest-benchmark recorded leaves with each phase's report."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        report = yield
        recorded = self.config._benchmarksession.benchmarks  # type: ignore[attr-defined]
        if recorded:
            # Sent once (the worker's own session then saves and prints nothing). One without rounds (its function
            # raised at once) is left out, as pytest-benchmark leaves it out of its table and JSON.
            setattr(report, ATTRIBUTE, [as_data(bench) for bench in recorded if bench])
            recorded.clear()
        return report


class _ControllerRelay(_Relay):
    """In the controller of an isolated run: the worker's benchmarks become pytest-benchmark's own entries."""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for data in getattr(report, ATTRIBUTE, ()):
            self.config._benchmarksession.benchmarks.append(from_data(data))  # type: ignore[attr-defined]

"""Every grading run ends, in bounded time, with a scorecard: the judge runs in a worker process.

Two layers keep a run alive. The submission itself runs in its box (`grader.box`), a process of its own per puzzle:
its crashes, hangs and exits end that process only, and the judge turns them into the verdict of the test that was
waiting (`grader.box.client`). Around the judge, this plugin: a grading run (`pytest grader/ ...`) runs its tests in
one pytest-xdist worker (`-n 1`, unless `-n` was given or `--no-isolation` asked for the tests in this process),
and the controller process, which writes the scorecard, runs neither submission nor judge code. What ends a worker
(a fault in the grader or its libraries, a limit reached) is told apart here:

- a test past `--timeout` seconds (the outer bound; the box's per-call deadlines come first): pytest-timeout
  (thread method) stops it, dumping every thread's stack and ending the worker; the test's criterion reads
  "exceeded N s";
- a crash (SIGSEGV, SIGABRT): faulthandler's dump in the worker names the signal and where it struck;
- an exit without a result (`os._exit`, the out-of-memory killer's SIGKILL, an unboxed submission that killed its
  parent): said so.

xdist replaces the worker and grading goes on; a puzzle that has ended `CRASHES_PER_PUZZLE` workers, or has used
up `--puzzle-timeout`, has its remaining tests failed at once with the reason (for lost workers, a pointer to the
criteria whose verdicts tell why each ended: a crash is told once), by the budget of `grader.judging.budget`. Each
test's time is measured once: by its worker, which counts it and sends it with the test's teardown report to the
controller, whose `Ledger` each new worker inherits; a lost worker's test, by the controller. On a machine without
a GPU the worker's address space is limited (`--memory-limit-gb`), a limit its boxes inherit, so that a runaway
allocation fails with MemoryError instead of calling the out-of-memory killer. pytest-benchmark, which turns itself
off under xdist, measures in the one worker and records in the controller (`grader.plugins.benchmark_relay`).
"""

from __future__ import annotations

import faulthandler
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, TextIO

import pytest

from grader.judging.budget import DEFAULT_PUZZLE_TIMEOUT_S, Ledger
from grader.plugins import benchmark_relay
from grader.plugins.runtime import criterion_of, is_grading_run, is_xdist_worker
from grader.scoring.results import CRITERION

DEFAULT_TEST_TIMEOUT_S = 900  # above the longest single test seen: C's compiled run on an H200, ~6 min
SECONDS_ATTRIBUTE = "grader_test_seconds"  # on a teardown report: the test's time, as its worker counted it


@dataclass(frozen=True)
class RunningTest:
    """What a worker writes (`current-<worker id>.json`) when it starts a test and again when the test has finished,
    so that the controller can tell what a lost worker was doing."""

    pid: int
    nodeid: str
    criterion: str  # "X.name"
    started: float  # time.time()
    timeout: float | None  # the per-test limit, seconds
    finished: bool = False

    def write(self, path: Path) -> None:
        """Write the record to `path`, as JSON."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> RunningTest | None:
        """The record at `path`; None when there is none (the worker started no test)."""
        return cls(**json.loads(path.read_text())) if path.exists() else None


@dataclass
class ControllerState:
    """The controller's side of a grading run: the workers' directory and the puzzles' ledger."""

    run_dir: Path
    ledger: Ledger = field(default_factory=Ledger)


@dataclass
class WorkerState:
    """A worker's side: the workers' directory, the file faulthandler writes a crash to, and the ledger as the
    controller handed it over, kept up to date with this worker's tests."""

    run_dir: Path
    fault: TextIO
    ledger: Ledger
    running: RunningTest | None = None  # the test now running


_CONTROLLER = pytest.StashKey[ControllerState]()
_WORKER = pytest.StashKey[WorkerState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("grader")
    group.addoption("--no-isolation", action="store_true", default=False,
                    help="run the judge (the grader's tests) in this pytest process, not in a worker; the "
                         "submission still runs in its box (for debugging: a crash or hang of the judge then ends the "
                         "run without a scorecard)")
    group.addoption("--puzzle-timeout", type=float, default=DEFAULT_PUZZLE_TIMEOUT_S, metavar="SECONDS",
                    help=f"stop grading a puzzle after this long; its remaining tests fail "
                         f"(default {DEFAULT_PUZZLE_TIMEOUT_S})")
    group.addoption("--memory-limit-gb", type=float, default=None, metavar="GIB",
                    help="address-space limit of the grading worker on a machine without a GPU "
                         "(default: 3/4 of physical memory)")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Before xdist and pytest-timeout read their options: a grading run gets one worker and a per-test time
    limit; in the worker (which parses the command line anew), the controller's limit and the thread method."""
    if is_xdist_worker(config):
        if "grader_timeout" in config.workerinput:
            config.option.timeout = config.workerinput["grader_timeout"]
            config.option.timeout_method = "thread"  # a hang in C cannot be interrupted by a signal
            benchmark_relay.hold(config)  # as in the controller, below
        return
    if not is_grading_run(config) or config.option.collectonly:
        return
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("grading bounds each test's time with pytest-timeout; install pytest-timeout")
    if config.getoption("timeout") is None and not config.getini("timeout"):
        config.option.timeout = DEFAULT_TEST_TIMEOUT_S
    if config.getoption("no_isolation") or config.getoption("usepdb", False):
        return  # pytest-timeout's signal method then: a hang in Python fails its test, a hang in C ends the run
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError("grading runs the submission in a pytest-xdist worker; install pytest-xdist, "
                                "or pass --no-isolation")
    if not config.option.numprocesses:
        # What xdist's own pytest_cmdline_main makes of `-n 1`, set here too, since it may already have run.
        config.option.numprocesses = 1
        config.option.dist = "load"
        config.option.tx = ["popen"]
    config.option.maxworkerrestart = "1000"  # grader.judging.budget bounds the restarts per puzzle
    # pytest-benchmark would turn itself off under xdist, warning; with one worker, its benchmarks are measured there
    # and recorded here (grader.plugins.benchmark_relay).
    benchmark_relay.hold(config)
    config.stash[_CONTROLLER] = ControllerState(Path(tempfile.mkdtemp(prefix="grader-workers-")))


# ---------------------------------------------------------------- controller


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each new worker where to leave its traces, and which puzzles already crashed workers."""
    state = node.config.stash.get(_CONTROLLER, None)
    if state is not None:
        node.workerinput["grader_run_dir"] = str(state.run_dir)
        node.workerinput["grader_ledger"] = state.ledger.to_json()
        node.workerinput["grader_timeout"] = node.config.getoption("timeout") or float(
            node.config.getini("timeout") or DEFAULT_TEST_TIMEOUT_S)


class Accounting:
    """On the controller: each test's time, as its worker counted it, so that a replaced worker inherits it."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        criterion = dict(report.user_properties).get(CRITERION)
        seconds = getattr(report, SECONDS_ATTRIBUTE, None)
        if criterion is not None and seconds is not None:
            self.ledger.add_time(criterion.split(".")[0], seconds)


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: Any) -> None:
    """A lost worker: say why on the test it was running, and count it against that test's puzzle."""
    state = report.node.config.stash.get(_CONTROLLER, None) if hasattr(report, "node") else None
    if state is None:
        return
    info = RunningTest.read(state.run_dir / f"current-{report.node.gateway.id}.json")
    if info is None:
        report.longrepr = f"the grading worker ended before it started a test (in {crashitem})"
        return
    if info.finished or info.nodeid != crashitem:
        # The worker ended between tests: the test it had been handed did not start, so it runs again on the next
        # worker.
        sched.mark_test_pending(crashitem)
        report.outcome = "rerun"  # type: ignore[assignment]
        return
    reason = _why_the_worker_ended(state.run_dir, info)
    report.longrepr = f"{reason} (in {crashitem})"
    report.user_properties.append((CRITERION, info.criterion))
    puzzle = info.criterion.split(".")[0]
    state.ledger.add_crash(puzzle, info.criterion)
    state.ledger.add_time(puzzle, time.time() - info.started)


def _why_the_worker_ended(run_dir: Path, info: RunningTest) -> str:
    elapsed = time.time() - info.started
    if info.timeout and elapsed >= info.timeout - 1:
        return f"the test exceeded {info.timeout:g} s and was stopped (stacks of every thread above, from pytest-timeout)"
    fault = run_dir / f"fault-{info.pid}.txt"
    text = fault.read_text(errors="replace").strip() if fault.exists() else ""
    if text:
        lines = text.splitlines()
        where = next((line.strip() for line in lines if line.strip().startswith("File ")), "")
        return f"the grading worker crashed: {lines[0]}{'; ' + where if where else ''}"
    return ("the grading worker exited without a result after "
            f"{elapsed:.0f} s (os._exit(), or killed from outside, e.g. by the out-of-memory killer)")


# ---------------------------------------------------------------- worker


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin, which points the handler at stderr
def pytest_configure(config: pytest.Config) -> None:
    """In a grading run only: the controller's time accounting and benchmark relay; in its worker, the relay, the
    crash record and the memory limit."""
    if not is_grading_run(config):
        return
    controller = config.stash.get(_CONTROLLER, None)
    if controller is not None and not is_xdist_worker(config):
        config.pluginmanager.register(Accounting(controller.ledger), "grader-time-accounting")
        benchmark_relay.register(config)
    if not is_xdist_worker(config) or "grader_run_dir" not in config.workerinput:
        return
    benchmark_relay.register(config)
    run_dir = Path(config.workerinput["grader_run_dir"])
    fault = open(run_dir / f"fault-{os.getpid()}.txt", "w")  # noqa: SIM115 (held open until the process ends)
    faulthandler.enable(file=fault, all_threads=True)
    config.stash[_WORKER] = WorkerState(run_dir, fault, Ledger.from_json(config.workerinput["grader_ledger"]))
    _limit_memory(config)


def _limit_memory(config: pytest.Config) -> None:
    """On a machine without an NVIDIA GPU, cap the worker's address space (CUDA reserves far more than it uses)."""
    import resource
    import shutil

    if shutil.which("nvidia-smi") or Path("/dev/nvidia0").exists():
        return
    gib = config.getoption("memory_limit_gb")
    limit = int(gib * 2**30) if gib else int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 / 4)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """In a worker: note the running test for the controller (its start is where its time counts from)."""
    state = item.config.stash.get(_WORKER, None)
    crit = criterion_of(item)
    if state is None or crit is None:
        yield
        return
    info = RunningTest(os.getpid(), item.nodeid, ".".join(crit), time.time(), item.config.getoption("timeout", None))
    current = state.run_dir / f"current-{item.config.workerinput['workerid']}.json"
    info.write(current)
    state.running = info
    try:
        yield
    finally:
        state.running = None
        replace(info, finished=True).write(current)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In a grading run, pytest-timeout's signal-method failure, reworded to name the limit (the traceback shows
    where it hung); in a worker, a test's time once its teardown has run, counted against its puzzle and sent with
    the teardown report."""
    report = yield
    crash = getattr(report.longrepr, "reprcrash", None)
    if is_grading_run(item.config) and report.failed and crash is not None and "from pytest-timeout" in crash.message:
        crash.message = f"the test exceeded {item.config.getoption('timeout'):g} s and was stopped (pytest-timeout)"
    state = item.config.stash.get(_WORKER, None)
    if report.when == "teardown" and state is not None and state.running is not None:
        seconds = time.time() - state.running.started
        state.ledger.add_time(state.running.criterion.split(".")[0], seconds)
        setattr(report, SECONDS_ATTRIBUTE, seconds)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A puzzle that crashed too many workers or ran out of time: its remaining tests fail at once, with why (for
    lost workers, where it is told)."""
    state = item.config.stash.get(_WORKER, None)
    crit = criterion_of(item)
    if state is None or crit is None:
        return
    stop = state.ledger.stop(crit[0], item.config.getoption("puzzle_timeout"))
    if stop is not None:
        pytest.fail(stop, pytrace=False)

"""The pytest plugin: options, the criterion marker, fixtures, and outcomes → rubric → scorecard → exit status.

All run state lives in one `GraderSession` kept in `config.stash`. Under pytest-xdist the workers run the
tests and the controller receives their reports (criterion, detail and value travel as JSON-safe
`user_properties`); only the controller scores and writes files. torch is imported only by fixtures.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from grader import profiles
from grader.outcomes import NOT_ATTEMPTED, NOT_MEASURED
from grader.progress import Progress
from grader.report import PuzzleCard, Scorecard
from grader.rubric import PUZZLES, Outcome, score
from grader.shrinking import ShrinkBudget
from grader.submission import DEFAULT_SUBMISSION, Submission, load

_CRITERION = "grader_criterion"
_DETAIL = "grader_detail"
_VALUE = "grader_value"
_NOTES = "grader_notes"
# (criterion, status, detail) as JSON: a criterion a test decides besides its own (see grader.guards).
ALSO_PROPERTY = "grader_also"
_GRADER_DIR = Path(__file__).resolve().parent


@dataclass
class TestResult:
    """One test's verdict on its criterion."""

    nodeid: str
    status: str  # passed | failed | not_measured | not_attempted
    message: str = ""
    details: list[str] = field(default_factory=list)
    value: float | None = None


@dataclass(eq=False)
class GraderSession:
    """Run state: the options, and every criterion's test results as they arrive."""

    submission_spec: str
    seed: int
    puzzles: list[str]
    criteria: list[str]
    min_scores: dict[str, int]
    grading: bool  # whether this run grades (is_grading_run); otherwise the plugin stays out of the way
    results: dict[tuple[str, str], list[TestResult]] = field(default_factory=dict)
    collected: set[tuple[str, str]] = field(default_factory=set)
    scorecard: Scorecard | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record a criterion test's verdict (on the xdist controller, from the workers' reports)."""
        props = dict(report.user_properties)
        crit = props.get(_CRITERION)
        if crit is None:
            return
        letter, name = crit.split(".", 1)
        self.collected.add((letter, name))  # under xdist only the workers collect; the controller learns it here
        if report.when == "teardown":
            self._record_also(report)
            if report.failed:  # a test whose teardown failed (tampering, say) gives its criterion no value
                for results in self.results.values():
                    for r in results:
                        if r.nodeid == report.nodeid:
                            r.value = None
        if report.when != "call" and not report.failed and not report.skipped:
            return
        status, message = _status_of(report)
        details = [v for k, v in report.user_properties if k == _DETAIL]
        value = next((v for k, v in report.user_properties if k == _VALUE), None)
        self.results.setdefault((letter, name), []).append(
            TestResult(report.nodeid, status, message, details, value))

    def _record_also(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == ALSO_PROPERTY:
                crit, status, detail = json.loads(value)
                letter, name = crit.split(".", 1)
                result = TestResult(report.nodeid, status, detail if status == "failed" else "",
                                    [] if status == "failed" else [detail])
                self.results.setdefault((letter, name), []).append(result)

    def outcome(self, puzzle: str, criterion: str) -> Outcome:
        """Fold a criterion's test results: any failure fails it; not measured beats passed."""
        results = self.results.get((puzzle, criterion), [])
        if not results:
            return Outcome("not_measured", detail="no test ran for this criterion")
        for status in ("failed", "not_attempted", "not_measured"):
            hits = [r for r in results if r.status == status]
            if hits:
                return Outcome(status, _first_value(results), _join_details(hits))
        return Outcome("passed", _first_value(results), _join_details(results))


def _first_value(results: list[TestResult]) -> float | None:
    return next((r.value for r in results if r.value is not None), None)


def _join_details(results: list[TestResult]) -> str:
    parts = []
    for r in results:
        text = "\n".join([*r.details, r.message]).strip() if r.status == "failed" else "\n".join(
            r.details or ([r.message] if r.message else []))
        if text and text not in parts:
            parts.append(text)
    return "\n".join(parts)


STASH = pytest.StashKey[GraderSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("grader", "Unsloth puzzle grader")
    group.addoption("--submission", action="append", default=[], metavar="PATH_OR_MODULE",
                    help="the submission to grade: a .py file, a package directory or a module name "
                         f"(default: {DEFAULT_SUBMISSION}); for several, use python -m grader.batch")
    group.addoption("--puzzle", action="append", default=[], choices=sorted(PUZZLES), metavar="LETTER",
                    help="grade only this puzzle (repeatable; default: all)")
    group.addoption("--criterion", action="append", default=[], metavar="PUZZLE.NAME",
                    help="run only this criterion's tests, e.g. A.correct (repeatable)")
    group.addoption("--score-json", default=None, metavar="PATH", help="write the scorecard as JSON to PATH")
    group.addoption("--min-score", action="append", default=[], metavar="PUZZLE=POINTS",
                    help="exit non-zero when the puzzle scores below POINTS (repeatable); with it, the exit "
                         "status follows scores and gates instead of individual failed criteria")
    group.addoption("--grader-seed", type=int, default=None, metavar="N",
                    help="seed for every input the grader draws (Hypothesis included); default: random, printed")


def is_grading_run(config: pytest.Config) -> bool:
    """Whether this run grades: it names a submission, or collects the grader's tests (`pytest grader/`, the
    default testpaths, `--pyargs grader`). Only then does the plugin act: in any other test run in the same
    environment it changes nothing.
    """
    if config.getoption("submission"):
        return True
    args = [a for a in config.args if not a.startswith("-")] or [str(config.rootpath / p)
                                                                    for p in config.getini("testpaths")]
    for arg in args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == _GRADER_DIR or _GRADER_DIR in path.parents or arg == "grader" or arg.startswith("grader."):
            return True
    return False


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' plugin loads the profile that --hypothesis-profile names
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "criterion(puzzle, name): the rubric criterion this test decides")
    seed = config.getoption("grader_seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
        config.option.grader_seed = seed  # xdist forwards options: workers share the controller's seed
    min_scores = {}
    for item in config.getoption("min_score"):
        letter, _, points = item.partition("=")
        if letter not in PUZZLES or not points.lstrip("-").isdigit():
            raise pytest.UsageError(f"--min-score expects PUZZLE=POINTS with PUZZLE in {sorted(PUZZLES)}, got {item!r}")
        min_scores[letter] = int(points)
    for c in config.getoption("criterion"):
        letter, _, name = c.partition(".")
        _check_criterion(letter, name, where=f"--criterion {c}")
    submissions = config.getoption("submission") or [DEFAULT_SUBMISSION]
    if len(submissions) > 1:
        raise pytest.UsageError(
            f"--submission was given {len(submissions)} times; one pytest run grades one submission. Grade several "
            f"into one leaderboard with: python -m grader.batch {shlex.join(submissions)}")
    state = config.stash[STASH] = GraderSession(
        submission_spec=submissions[0], seed=seed, puzzles=config.getoption("puzzle"),
        criteria=config.getoption("criterion"), min_scores=min_scores, grading=is_grading_run(config))
    config.pluginmanager.register(state, "grader-session")
    if not state.grading:
        return
    for line in ("ignore::DeprecationWarning", "ignore::FutureWarning"):  # as this checkout's pyproject.toml does
        config.addinivalue_line("filterwarnings", line)
    profiles.register()
    if config.getoption("hypothesis_profile", None) is None:
        from hypothesis import settings

        settings.load_profile(profiles.DEFAULT_PROFILE)
    if config.getoption("hypothesis_seed", None) is None:
        import hypothesis.core

        hypothesis.core.global_force_seed = seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[STASH]
    if not s.grading:
        return []
    return [f"grader: submission={s.submission_spec} seed={s.seed} puzzles={','.join(s.puzzles) or 'all'}"]


def _check_criterion(letter: str, name: str, *, where: str) -> None:
    """A UsageError naming `where` unless `letter.name` is a rubric criterion (a typo fails loudly)."""
    if letter not in PUZZLES:
        raise pytest.UsageError(f"{where}: unknown puzzle {letter!r}; expected PUZZLE.NAME with PUZZLE in {sorted(PUZZLES)}")
    try:
        PUZZLES[letter].criterion(name)
    except KeyError as exc:
        raise pytest.UsageError(f"{where}: {exc.args[0]}") from None


def criterion_of(item: pytest.Item) -> tuple[str, str] | None:
    """The (puzzle, criterion) a test's `criterion` marker names, or None for an unmarked test."""
    marker = item.get_closest_marker("criterion")
    if marker is None:
        return None
    if len(marker.args) != 2:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.criterion(PUZZLE, NAME)")
    return marker.args[0], marker.args[1]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STASH]
    keep, drop = [], []
    for item in items:
        crit = criterion_of(item)
        if crit is None:
            if _GRADER_DIR in Path(str(item.path)).parents:
                raise pytest.UsageError(f"{item.nodeid}: every grader test needs @pytest.mark.criterion(...)")
            keep.append(item)
            continue
        letter, name = crit
        _check_criterion(letter, name, where=item.nodeid)
        selected = (not state.puzzles or letter in state.puzzles) and (
            not state.criteria or f"{letter}.{name}" in state.criteria)
        if selected:
            item.user_properties.append((_CRITERION, f"{letter}.{name}"))
            item.user_properties.append(("grader_puzzle", letter))  # JUnit XML shows both as properties
            state.collected.add((letter, name))
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _status_of(report: pytest.TestReport) -> tuple[str, str]:
    if report.passed:
        return "passed", ""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(NOT_ATTEMPTED):
            return "not_attempted", reason.removeprefix(NOT_ATTEMPTED)
        if reason.startswith(NOT_MEASURED):
            return "not_measured", reason.removeprefix(NOT_MEASURED)
        return "not_measured", f"skipped: {reason}"
    return "failed", _failure_message(report)


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1]
    message = message.split("\nassert ")[0]  # the test's own message, not pytest's re-evaluation
    if report.when not in ("call", "???"):  # "???": xdist's report for a test whose worker was lost
        message = f"error in {report.when}: {message}"
    notes = next((v for k, v in report.user_properties if k == _NOTES), "")
    if notes:  # the exception's own text may end with its notes (Python 3.11 prints them): keep them once
        message = message.split(notes.splitlines()[0])[0].rstrip()
    return "\n".join(part for part in (message, notes) if part)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failure's PEP 678 notes (Hypothesis' shrunk example and its @reproduce_failure line) travel with the
    report, so the scorecard shows them whatever Hypothesis' wording and under pytest-xdist."""
    report = yield
    notes = getattr(call.excinfo.value, "__notes__", None) if call.excinfo is not None else None
    if report.failed and notes:
        report.user_properties.append((_NOTES, "\n".join(str(note) for note in notes)))
    return report


def _reproduce_command(config: pytest.Config, state: GraderSession) -> str:
    target = ["--pyargs", "grader"] if config.option.pyargs else ["grader/"]  # installed, or in this checkout
    args = ["pytest", *target, "--submission", state.submission_spec, "--grader-seed", str(state.seed)]
    for p in state.puzzles:
        args += ["--puzzle", p]
    profile = config.getoption("hypothesis_profile", None)
    if profile:
        args += ["--hypothesis-profile", profile]
    return shlex.join(args)


def build_scorecard(config: pytest.Config) -> Scorecard | None:
    """Score every collected puzzle from the results received so far."""
    state = config.stash[STASH]
    if not state.collected:
        return None
    from grader import environment

    cards = {}
    for letter in sorted({p for p, _ in state.collected}):
        puzzle = PUZZLES[letter]
        # With --criterion, a criterion not selected is shown only when a test found it failed (the guards').
        outcomes = {c.name: state.outcome(letter, c.name) for c in puzzle.criteria
                    if not state.criteria or (letter, c.name) in state.collected
                    or state.outcome(letter, c.name).status == "failed"}
        tests = {c.name: [r.nodeid for r in state.results.get((letter, c.name), [])] for c in puzzle.criteria}
        cards[letter] = PuzzleCard(letter, score(puzzle, outcomes), outcomes, tests)
    return Scorecard(
        submission=state.submission_spec, grader_seed=state.seed,
        hypothesis_profile=config.getoption("hypothesis_profile", None) or profiles.DEFAULT_PROFILE,
        environment=environment.describe(), puzzles=cards, reproduce=_reproduce_command(config, state))


def is_xdist_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (which runs tests but neither scores nor prints)."""
    return hasattr(config, "workerinput")


def runs_side_by_side(config: pytest.Config) -> bool:
    """Whether other tests run at the same time as this process's (pytest-xdist with more than one worker)."""
    return is_xdist_worker(config) and int(config.workerinput.get("workercount", 1)) > 1


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if is_xdist_worker(config):
        return
    state = config.stash[STASH]
    if exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED) or config.option.collectonly:
        return
    card = state.scorecard = build_scorecard(config)
    if card is None:
        return
    json_path = config.getoption("score_json")
    if json_path:
        card.write_json(Path(config.invocation_params.dir, json_path))
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return
    # A gate that failed fails the run; one a CPU could not decide leaves the score at 0, provisional, and
    # fails only a --min-score gate above it.
    gates_failed = any(o.status == "failed" and PUZZLES[p.letter].criterion(name).kind == "gate"
                       for p in card.puzzles.values() for name, o in p.outcomes.items())
    below = [k for k, need in state.min_scores.items()
             if k in card.puzzles and card.puzzles[k].score.points < need]
    if state.min_scores:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED if (gates_failed or below) else pytest.ExitCode.OK
    elif gates_failed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if is_xdist_worker(config):
        return
    state = config.stash[STASH]
    card = state.scorecard
    if card is None:
        return
    tr = terminalreporter
    tr.section("grader scorecard")
    for line in card.lines():
        tr.write_line(line)
    details = card.failure_details()
    if details:
        tr.section("grader: why criteria failed")
        for line in details:
            tr.write_line(line)
    for letter, need in state.min_scores.items():
        if letter in card.puzzles:
            got = card.puzzles[letter].score.points
            tr.write_line(f"--min-score {letter}={need}: scored {got} -> {'ok' if got >= need else 'BELOW'}")


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record the grader's environment (device, driver, library versions) in pytest-benchmark's JSON, so that
    `python -m grader.compare_benchmarks` can refuse to compare files from different devices."""
    if not config.stash[STASH].grading:
        return
    from grader import environment

    machine_info["grader_environment"] = environment.describe()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def progress(pytestconfig: pytest.Config) -> Progress:
    """Progress lines for long steps: `with progress.step("C: training"): ...` (silent with -q and with several
    xdist workers; from the one worker of an isolated run, on its standard error, the controller's terminal)."""
    plugins = pytestconfig.pluginmanager
    capture = plugins.get_plugin("capturemanager")
    if pytestconfig.get_verbosity() < 0 or runs_side_by_side(pytestconfig):
        return Progress(None, capture)
    if is_xdist_worker(pytestconfig):
        return Progress(None, capture, sys.__stderr__)  # the process's own stderr, not the captured one
    return Progress(plugins.get_plugin("terminalreporter"), capture)


@pytest.fixture(scope="session")
def hypothesis_profile(pytestconfig: pytest.Config) -> str:
    """The name of the Hypothesis profile this run uses (`--hypothesis-profile`, else the grader's default)."""
    return pytestconfig.getoption("hypothesis_profile", None) or profiles.DEFAULT_PROFILE


@pytest.fixture
def shrink_budget(hypothesis_profile: str) -> ShrinkBudget:
    """A fresh shrink budget for one property (`grader.shrinking`), as long as the profile allows."""
    return ShrinkBudget(profiles.SHRINK_SECONDS.get(hypothesis_profile, profiles.SHRINK_SECONDS["dev"]))


@pytest.fixture(scope="session")
def grader_seed(pytestconfig: pytest.Config) -> int:
    """The run's seed (`--grader-seed`), hidden from the submission."""
    return pytestconfig.stash[STASH].seed


def choose_device() -> Any:
    """`cuda` when a GPU is present; otherwise `cpu`, with Triton's interpreter switched on before any kernel is
    defined and made to round bfloat16 as a GPU does (`grader.interpreter`)."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    os.environ["TRITON_INTERPRET"] = "1"
    from grader.interpreter import make_faithful

    make_faithful()
    return torch.device("cpu")


@pytest.fixture(scope="session")
def device() -> Any:
    """The device the grader runs on (`choose_device`)."""
    return choose_device()


@pytest.fixture(scope="session")
def submission(pytestconfig: pytest.Config, device: Any) -> Submission:
    """The submission under grade, loaded once (after `device`, so Triton sees the interpreter setting)."""
    spec = pytestconfig.stash[STASH].submission_spec
    return load(spec, root=pytestconfig.invocation_params.dir)


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest, grader_seed: int) -> Iterator[None]:
    """Seed Python and torch per grader test from the grader seed and the test id (torch only if already imported)."""
    if criterion_of(request.node) is None:
        yield
        return
    local = zlib.crc32(request.node.nodeid.encode()) ^ grader_seed
    random.seed(local)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(local)
    yield


@pytest.fixture
def criterion_detail(request: pytest.FixtureRequest) -> Callable[..., None]:
    """`criterion_detail(text, value=None, replace=False)`: record a measured figure that the scorecard shows.

    With `replace=True` the text takes the place of the one this test recorded last with `replace=True`: a
    running summary that a property test updates after each example.
    """
    running: list[int] = []

    def record(text: str, value: float | None = None, replace: bool = False) -> None:
        props = request.node.user_properties
        if replace and running:
            props[running[0]] = (_DETAIL, text)
        else:
            if replace:
                running.append(len(props))
            props.append((_DETAIL, text))
        if value is not None:
            props.append((_VALUE, float(value)))

    return record

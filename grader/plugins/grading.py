"""The grading plugin: options, the criterion marker, hooks; the fixtures are `grader.plugins.fixtures`.

Loaded by every pytest run in an environment where the grader is installed, it is inert outside a grading run
(`grader.plugins.runtime.is_grading_run`): its options are registered (pytest parses the command line with them),
and nothing else. In a grading run, `pytest_configure` makes the run's state (`GraderSession`, kept in
`config.stash[STASH]`), registers the hook that feeds it each report as plain data (`ReportFeed`) and the fixtures,
and sets the seed; every other hook here acts only where that state exists.

A grading run flows one way: the submission is loaded (`grader.box.submission`), tests decide criteria and leave
their verdicts in report properties, the run's state folds them into outcomes and a scorecard
(`grader.scoring.results`, `grader.scoring.rubric`, `grader.scoring.scorecard`), and `pytest_sessionfinish` sets the
exit status. Under pytest-xdist the workers run the tests and only the controller scores and writes files. Neither
Hypothesis nor torch is imported here before a grading run needs them.
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from grader.box.submission import DEFAULT_SUBMISSION
from grader.judging.outcomes import GRADER, STOP_ATTRIBUTE, judge_out_of_memory_reason
from grader.plugins import benchmark_relay
from grader.plugins.runtime import GRADER_DIR, criterion_of, is_grading_run, is_xdist_worker
from grader.scoring.results import (CRITERION, NOTES, PUZZLE, STOP, GraderSession, PhaseReport, build_scorecard,
                                     replayed_failures)
from grader.scoring.rubric import PUZZLES
from grader.scoring.scorecard import INCOMPLETE_EXIT_STATUS, WIDE, box_line

if TYPE_CHECKING:
    from grader.box.sandbox import BoxInfo

STASH = pytest.StashKey[GraderSession]()
BOX = pytest.StashKey["BoxInfo"]()  # the sandbox the submission runs in (`grader.box.sandbox.probe`)
JUDGING = pytest.StashKey[str]()  # "A.correct": the criterion of the test being run (its setup included)
TOLD_IN = "_grader_told_in"  # set on an exception: the criterion whose verdict told it (`told_elsewhere`)
SEED_INPUT = "grader_seed"  # the controller's seed in a pytest-xdist worker's `workerinput`


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
    group.addoption("--report-html", default=None, metavar="PATH",
                    help="write the scorecard as one self-contained HTML page with its pictures to PATH "
                         "(grader.report.pages; again from a saved card: python -m grader.report CARD.json -o PAGE)")
    group.addoption("--min-score", action="append", default=[], metavar="PUZZLE=POINTS",
                    help="exit non-zero when the puzzle scores below POINTS (repeatable); with it, the exit "
                         "status follows scores and gates instead of individual failed criteria")
    group.addoption("--grader-seed", type=int, default=None, metavar="N",
                    help="seed for every input the grader draws (Hypothesis included); default: random, printed")
    group.addoption("--shrink-seconds", type=float, default=None, metavar="SECONDS",
                    help="how long Hypothesis may go on shrinking a failure once one is found, per property "
                         "(grader.judging.shrinking; default: the Hypothesis profile's, ci 15, dev 60, thorough 300); "
                         "the verdict is the same, the example shown may be less small")
    group.addoption("--oracle-store", default=None, metavar="DIR|none",
                    help="where the judge keeps what it computes once for every grading with the same seed, device "
                         "and versions (puzzle C's eager oracle and noise floor), hidden from every box (default: "
                         "$GRADER_ORACLE_STORE, else ~/.cache/unsloth-puzzle-grader/c-oracles; none: compute afresh). "
                         "Used only when the submission runs in bubblewrap")
    group.addoption("--box", default="auto", choices=("auto", "bwrap", "none"),
                    help="the sandbox around the submission's process: bubblewrap where it runs (auto, the default; "
                         "the scorecard says when it could not), bubblewrap or refuse to grade (bwrap), or a plain "
                         "separate process (none); see grader.box.sandbox")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' plugin loads the profile that --hypothesis-profile names
def pytest_configure(config: pytest.Config) -> None:
    """In a grading run only: check the grader's options, make and register the run's state and the fixtures
    (`grader.plugins.fixtures`), probe the box, register the grader's Hypothesis profiles and seed Hypothesis.
    Elsewhere nothing."""
    if not is_grading_run(config):
        return
    config.addinivalue_line("markers", "criterion(puzzle, name): the rubric criterion this test decides")
    min_scores = {}
    for item in config.getoption("min_score"):
        letter, _, points = item.partition("=")
        if letter not in PUZZLES or not points.lstrip("-").isdigit():
            raise pytest.UsageError(f"--min-score expects PUZZLE=POINTS with PUZZLE in {sorted(PUZZLES)}, got {item!r}")
        min_scores[letter] = int(points)
    if (config.getoption("shrink_seconds") or 0) < 0:
        raise pytest.UsageError(f"--shrink-seconds expects seconds >= 0, got {config.getoption('shrink_seconds')}")
    for c in config.getoption("criterion"):
        letter, _, name = c.partition(".")
        check_criterion(letter, name, where=f"--criterion {c}")
    submissions = config.getoption("submission") or [DEFAULT_SUBMISSION]
    if len(submissions) > 1:
        raise pytest.UsageError(
            f"--submission was given {len(submissions)} times; one pytest run grades one submission. Grade several "
            f"into one leaderboard with: python -m grader.batch {shlex.join(submissions)}")
    seed = run_seed(config)
    state = config.stash[STASH] = GraderSession(
        submission_spec=submissions[0], seed=seed, puzzles=config.getoption("puzzle"),
        criteria=config.getoption("criterion"), min_scores=min_scores)
    config.pluginmanager.register(ReportFeed(state), "grader-report-feed")
    from grader.plugins import fixtures

    config.pluginmanager.register(fixtures, fixtures.__name__)
    from grader.box import sandbox

    try:
        box = config.stash[BOX] = sandbox.probe(config.getoption("box"))
    except sandbox.BoxUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None
    state.box = box.as_json()
    for line in ("ignore::DeprecationWarning", "ignore::FutureWarning"):  # as this checkout's pyproject.toml does
        config.addinivalue_line("filterwarnings", line)
    from grader.judging import profiles

    profiles.register()
    if config.getoption("hypothesis_profile", None) is None:
        from hypothesis import settings

        settings.load_profile(profiles.DEFAULT_PROFILE)
    if config.getoption("hypothesis_seed", None) is None:
        import hypothesis.core

        hypothesis.core.global_force_seed = seed


class ReportFeed:
    """The run's state fed by pytest: each test phase's report, as plain data (`phase_report`), to
    `GraderSession.record` (on the xdist controller, from the workers' reports)."""

    def __init__(self, state: GraderSession) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Hand the report to the run's state."""
        self.state.record(phase_report(report))


def phase_report(report: pytest.TestReport) -> PhaseReport:
    """What the result model reads of a test's report: its outcome, properties, a failure's message (the exception's
    own text, or the last line of a report that has no exception: a lost worker's, a pointer) and a skip's reason."""
    failure = skip_reason = ""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        failure = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1]
    elif report.skipped:
        skip_reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return PhaseReport(report.nodeid, report.when, report.outcome, list(report.user_properties), failure, skip_reason)


def session_of(config: pytest.Config) -> GraderSession | None:
    """The grading run's state; None outside a grading run, where every hook here returns at once."""
    return config.stash.get(STASH, None)


def run_seed(config: pytest.Config) -> int:
    """The run's grader seed: `--grader-seed`; in a pytest-xdist worker, the controller's (`pytest_configure_node`
    hands it over); else a random one, drawn once by the controller.

    xdist starts a worker with the controller's command line, not with its options: without the handover, the worker
    drew a random seed of its own, so a run without `--grader-seed` printed one seed and graded with another, and
    its `reproduce` command did not reproduce it.
    """
    seed = config.getoption("grader_seed")
    if seed is None and is_xdist_worker(config):
        seed = config.workerinput.get(SEED_INPUT)
    return int(seed) if seed is not None else random.SystemRandom().randrange(2**31)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Give each new pytest-xdist worker (a replacement too) the controller's grader seed (`run_seed`)."""
    state = session_of(node.config)
    if state is not None:
        node.workerinput[SEED_INPUT] = state.seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = session_of(config)
    if s is None:
        return []
    return [f"grader: submission={s.submission_spec} seed={s.seed} puzzles={','.join(s.puzzles) or 'all'}",
            f"grader: {box_line(s.box)}"]


def check_criterion(letter: str, name: str, *, where: str) -> None:
    """A UsageError naming `where` unless `letter.name` is a rubric criterion (a typo fails loudly)."""
    if letter not in PUZZLES:
        raise pytest.UsageError(f"{where}: unknown puzzle {letter!r}; expected PUZZLE.NAME with PUZZLE in {sorted(PUZZLES)}")
    try:
        PUZZLES[letter].criterion(name)
    except KeyError as exc:
        raise pytest.UsageError(f"{where}: {exc.args[0]}") from None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = session_of(config)
    if state is None:
        return
    keep, drop = [], []
    for item in items:
        crit = criterion_of(item)
        if crit is None:
            if GRADER_DIR in Path(str(item.path)).parents:
                raise pytest.UsageError(f"{item.nodeid}: every grader test needs @pytest.mark.criterion(...)")
            keep.append(item)
            continue
        letter, name = crit
        check_criterion(letter, name, where=item.nodeid)
        selected = (not state.puzzles or letter in state.puzzles) and (
            not state.criteria or f"{letter}.{name}" in state.criteria)
        if selected:
            item.user_properties.append((CRITERION, f"{letter}.{name}"))
            item.user_properties.append((PUZZLE, letter))  # JUnit XML shows both as properties
            state.collected.add((letter, name))
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note the criterion the test decides before its fixtures run: a submission process that ends during one of its
    calls (a shared fixture's included) is told in this test's verdict, and later tests point there."""
    crit = criterion_of(item)
    if crit is not None and session_of(item.config) is not None:
        item.config.stash[JUDGING] = ".".join(crit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failure's PEP 678 notes (Hypothesis' shrunk example and its @reproduce_failure line), and the verdict of
    a `grader.judging.outcomes` stop, travel with the report as data, whatever the wording and under pytest-xdist. A
    test that the submission's process ending stopped fails with the reason (`grader.judging.box_calls`).

    An out-of-memory error here, in the judge, is the grader's own (the submission's calls run in its box, whose
    errors arrive as `SubmissionError`): the test's criterion is then not measured and the grading incomplete. A
    failure already told under another criterion (`told_elsewhere`) is reported as a pointer to it."""
    report = yield
    if session_of(item.config) is None:
        return report
    error = call.excinfo.value if call.excinfo is not None else None
    crit = criterion_of(item)
    if report.failed and error is not None and crit is not None and _out_of_memory(error):
        reason = judge_out_of_memory_reason(error, f"{item.name}, {call.when}")
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: not measured: {reason}")
        report.user_properties.append((STOP, json.dumps({"status": "not_measured", "reason": reason,
                                                         "cause": GRADER})))
        return report
    if report.failed and error is not None and crit is not None:
        pointer = told_elsewhere(error, ".".join(crit))
        if pointer is not None:
            report.longrepr = pointer
            return report
    if report.failed and "grader.box.client" in sys.modules:  # a box was used: the submission's process may have ended
        from grader.judging.box_calls import fail_with_stop_reason

        fail_with_stop_reason(report, error)
    notes = [str(note) for note in getattr(error, "__notes__", None) or []]
    from hypothesis.errors import FlakyFailure

    if isinstance(error, FlakyFailure):
        notes += replayed_failures(error)
    if report.failed and notes:
        report.user_properties.append((NOTES, "\n".join(notes)))
    stop = getattr(error, STOP_ATTRIBUTE, None)
    if report.skipped and stop is not None:
        status, reason, cause = stop
        report.user_properties.append((STOP, json.dumps({"status": status, "reason": reason, "cause": cause})))
    return report


def told_elsewhere(error: BaseException, criterion: str) -> str | None:
    """One error that fails several tests (a shared fixture's: pytest raises the same exception again for every test
    that needs it) is told by the first test it failed. For a test of another criterion, the one-line pointer it fails
    with instead; None where the error is this criterion's to tell. (A crash of the submission's process, a
    `BoxStopped`, is not kept by pytest: the fixture runs again, and the box points to where its ending is told.)"""
    first = getattr(error, TOLD_IN, None)
    if first is None:
        setattr(error, TOLD_IN, criterion)
        return None
    return None if first == criterion else f"not judged: a setup step it shares failed (see {first})"


def _out_of_memory(error: BaseException) -> bool:
    """`grader.measure.memory.out_of_memory`, imported only once a test failed (it imports torch)."""
    if isinstance(error, MemoryError):
        return True
    if "torch" not in sys.modules:
        return False
    from grader.measure.memory import out_of_memory

    return out_of_memory(error)


RESOURCES_OUTPUT = "grader_resources"  # a pytest-xdist worker's measured GPU memory, in its `workeroutput`


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = session_of(config)
    if state is None:
        return
    state.record_peak("judge", _judge_peak_bytes())
    if is_xdist_worker(config):
        config.workeroutput[RESOURCES_OUTPUT] = json.dumps(state.resources)
        return
    if exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED) or config.option.collectonly:
        return
    from grader.judging import profiles  # Hypothesis: not imported outside a grading run

    profile = config.getoption("hypothesis_profile", None) or profiles.DEFAULT_PROFILE
    card = state.scorecard = build_scorecard(state, config.invocation_params.args, profile)
    if card is None:
        return
    card.benchmarks = benchmark_relay.summary(config)  # pytest-benchmark's own session has finished (it wraps)
    json_path = config.getoption("score_json")
    if json_path:
        card.write_json(Path(config.invocation_params.dir, json_path))
    html_path = config.getoption("report_html")
    if html_path:
        from grader.report import pages

        try:
            pages.write_card_page(card.as_json(), Path(config.invocation_params.dir, html_path))
        except Exception as exc:  # the scorecard still prints; the run fails, naming why the page is missing
            state.report_error = f"--report-html {html_path}: not written ({type(exc).__name__}: {exc})"
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return
    session.exitstatus = exit_status(card, state.min_scores, criterion_failed=exitstatus == pytest.ExitCode.TESTS_FAILED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """The GPU memory a pytest-xdist worker measured (`RESOURCES_OUTPUT`), kept by the controller for the scorecard."""
    state = session_of(node.config)
    measured = getattr(node, "workeroutput", {}).get(RESOURCES_OUTPUT)
    if state is not None and measured:
        for name, nbytes in json.loads(measured).items():
            state.record_peak(name, nbytes)


def _judge_peak_bytes() -> int | None:
    """The GPU memory this process (the judge) reserved at its peak, or None where it used no GPU."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_reserved()


def exit_status(card: Any, min_scores: dict[str, int], *, criterion_failed: bool) -> int:
    """The grading's exit status (the README's rule): 1 when a gate failed (or, without --min-score, any criterion
    failed); else INCOMPLETE_EXIT_STATUS when a gate was not decided or the grader failed in its own work (the score
    is not known: never 0, never a failing grade); else 1 below a --min-score; else 0."""
    gates_failed = any(p.score.gates_failed for p in card.puzzles.values())
    if gates_failed or (criterion_failed and not min_scores):
        return pytest.ExitCode.TESTS_FAILED
    if not all(p.score.complete for p in card.puzzles.values()):
        return INCOMPLETE_EXIT_STATUS
    below = [k for k, need in min_scores.items() if k in card.puzzles and card.puzzles[k].score.points < need]
    return pytest.ExitCode.TESTS_FAILED if below else pytest.ExitCode.OK


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = session_of(config)
    if state is None or is_xdist_worker(config):
        return
    card = state.scorecard
    if card is None:
        return
    tr = terminalreporter
    tr.section("grader scorecard")
    html = config.getoption("report_html") if state.report_error is None else None
    written = " and ".join(p for p in (config.getoption("score_json"), html) if p)
    width = shutil.get_terminal_size((WIDE, 24)).columns  # a log or a pipe gets the scorecard's own width
    for line in card.lines(width, full_text_at=written or None):
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
    if state.report_error:
        tr.write_line(f"grader: {state.report_error}", red=True)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record the grader's environment (device, driver, library versions) in pytest-benchmark's JSON, so that
    `python -m grader.compare_benchmarks` can refuse to compare files from different devices."""
    if session_of(config) is None:
        return
    from grader.scoring import environment

    machine_info["grader_environment"] = environment.describe()

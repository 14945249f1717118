"""The fixtures every puzzle's tests use, and the seeding of each grader test: registered by
`grader.plugins.grading` in a grading run only (`grader.plugins.runtime.is_grading_run`), so that any other test run
in an environment where the grader is installed sees none of them. torch is imported only when a fixture runs."""

from __future__ import annotations

import json
import math
import random
import sys
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from grader.judging import profiles
from grader.judging.progress import Progress
from grader.judging.shrinking import ShrinkBudget
from grader.plugins.grading import BOX, JUDGING, STASH, check_criterion
from grader.plugins.runtime import GRADER_DIR, choose_device, criterion_of, is_xdist_worker, runs_side_by_side
from grader.scoring.results import ALSO, DATA, DETAIL, VALUE


@pytest.fixture(scope="session")
def progress(pytestconfig: pytest.Config) -> Progress:
    """Progress lines for long steps: `with progress.step("C: training"): ...`; shown with -q too (a log cut short
    must say which step it was in), silent with -qq and with several xdist workers; from the one worker of an
    isolated run, on its standard error, the controller's terminal."""
    plugins = pytestconfig.pluginmanager
    capture = plugins.get_plugin("capturemanager")
    if pytestconfig.get_verbosity() < -1 or runs_side_by_side(pytestconfig):
        return Progress(None, capture)
    if is_xdist_worker(pytestconfig):
        return Progress(None, capture, sys.__stderr__)  # the process's own stderr, not the captured one
    return Progress(plugins.get_plugin("terminalreporter"), capture)


@pytest.fixture(scope="session")
def hypothesis_profile(pytestconfig: pytest.Config) -> str:
    """The name of the Hypothesis profile this run uses (`--hypothesis-profile`, else the grader's default)."""
    return pytestconfig.getoption("hypothesis_profile", None) or profiles.DEFAULT_PROFILE


@pytest.fixture
def shrink_budget(pytestconfig: pytest.Config, hypothesis_profile: str) -> ShrinkBudget:
    """A fresh shrink budget for one property (`grader.judging.shrinking`): `--shrink-seconds`, else as long as the
    profile allows."""
    seconds = pytestconfig.getoption("shrink_seconds")
    if seconds is None:
        seconds = profiles.SHRINK_SECONDS.get(hypothesis_profile, profiles.SHRINK_SECONDS["dev"])
    return ShrinkBudget(seconds)


@pytest.fixture(scope="session")
def grader_seed(pytestconfig: pytest.Config) -> int:
    """The run's seed (`--grader-seed`), hidden from the submission."""
    return pytestconfig.stash[STASH].seed


@pytest.fixture(scope="session")
def device() -> Any:
    """The device the grader runs on (`choose_device`)."""
    return choose_device()


@pytest.fixture(scope="session")
def oracle_store(pytestconfig: pytest.Config, progress: Progress) -> Path | None:
    """The directory of the judge's oracle store (`--oracle-store`), or None: turned off, or the submission runs
    unboxed (it could then read the oracle's gradients and hand them back, or rewrite them)."""
    from grader.puzzle_c.oracle_store import default_directory

    asked = pytestconfig.getoption("oracle_store")
    if asked == "none":
        return None
    if not pytestconfig.stash[BOX].boxed:
        progress.line("the oracle store is not used: the submission runs unboxed and could read it")
        return None
    directory = Path(asked).expanduser().resolve() if asked else default_directory().resolve()
    here = Path(pytestconfig.invocation_params.dir).resolve()
    if directory == here or directory in here.parents or directory in GRADER_DIR.parents:
        raise pytest.UsageError(f"--oracle-store {directory}: holds the checkout or the grader, which every box must "
                                "read; name a directory of its own")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # before any box starts: each hides it
    return directory


@pytest.fixture(scope="session")
def submission(pytestconfig: pytest.Config, device: Any, progress: Progress,
               oracle_store: Path | None) -> Iterator[Any]:
    """The submission under grade (`grader.box.candidate.BoxedSubmission`): never imported here; each puzzle's calls run
    in its own box (`grader.box`), where the judge's own store is hidden."""
    from grader.box.candidate import BoxedSubmission

    state = pytestconfig.stash[STASH]
    boxed = BoxedSubmission(state.submission_spec, root=pytestconfig.invocation_params.dir, device=device.type,
                            info=pytestconfig.stash[BOX], progress=progress.line,
                            judging=lambda: pytestconfig.stash.get(JUDGING, None),
                            hidden=[oracle_store] if oracle_store is not None else [])
    yield boxed
    state.record_peak("box", boxed.peak_bytes())
    boxed.close()


@pytest.fixture(scope="session")
def record_peak(pytestconfig: pytest.Config) -> Callable[[str, int | None], None]:
    """`record_peak(name, nbytes)`: GPU memory a part of the grading held at its peak, for the scorecard's
    `resources` (`grader.batch` packs gradings on a GPU by it)."""
    return pytestconfig.stash[STASH].record_peak


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
def criterion_name(request: pytest.FixtureRequest) -> str:
    """The qualified name ("D.correct") of the criterion the test's marker names, for its failure messages."""
    puzzle, name = criterion_of(request.node)
    return f"{puzzle}.{name}"


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
            props[running[0]] = (DETAIL, text)
        else:
            if replace:
                running.append(len(props))
            props.append((DETAIL, text))
        if value is not None:
            props.append((VALUE, float(value)))

    return record


@pytest.fixture
def criterion_data(request: pytest.FixtureRequest) -> Callable[..., None]:
    """`criterion_data(**figures)`: record JSON-able figures (numbers, text, lists, objects) that the HTML report
    draws (`grader.report.figures`). A later call replaces the keys it names; the criterion's tests' records are merged
    (`grader.scoring.results.merge_data`). Non-finite floats are recorded as null."""
    recorded: dict[str, Any] = {}
    where: list[int] = []

    def record(**figures: Any) -> None:
        recorded.update(figures)
        props = request.node.user_properties
        if not where:
            where.append(len(props))
            props.append((DATA, ""))
        props[where[0]] = (DATA, json.dumps(_finite(recorded)))

    return record


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@pytest.fixture
def also_decide(request: pytest.FixtureRequest) -> Callable[[str, str, str], None]:
    """`also_decide("A.correct", "failed", detail)`: this test's verdict on a criterion besides its own (the speed
    test that finds the timed outputs wrong fails `correct` too); recorded with the test's teardown report."""

    def decide(criterion: str, status: str, detail: str) -> None:
        letter, _, name = criterion.partition(".")
        check_criterion(letter, name, where=f"also_decide({criterion!r})")
        request.node.user_properties.append((ALSO, json.dumps([criterion, status, detail])))

    return decide

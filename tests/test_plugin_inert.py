"""The grader's pytest plugin is loaded by every pytest run in an environment where the grader is installed (the
`pytest11` entry point, `grader.pytest_entry`), and is inert outside a grading run: a foreign test suite collects,
lists its fixtures, seeds, draws its Hypothesis examples and ends exactly as it does with the plugin disabled
(`-p no:unsloth_puzzle_grader`); the only trace is the plugin's own modules, which register options and nothing
else (`grader.plugins.runtime.is_grading_run`)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import grader.pytest_entry
from tests.verdicts import REPO

CONFTEST = '''
"""A foreign suite's conftest: a fixture named as one of the grader's, its own seeding, and a record of what each
test and each report saw."""
import json
import os
import random
import sys

import pytest

IMPORTED_BEFORE_THE_SUITE = sorted(m for m in ("hypothesis", "torch") if m in sys.modules)


def record(**values):
    with open(os.environ["FOREIGN_LOG"], "a") as log:
        log.write(json.dumps(values, sort_keys=True) + "\\n")


def pytest_configure(config):
    random.seed(1234)


def pytest_runtest_logreport(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    record(report=report.nodeid, when=report.when, outcome=report.outcome,
           properties=[list(p) for p in report.user_properties], message=crash.message if crash else None)


@pytest.fixture
def device():
    return "the suite's own device"
'''
SUITE = '''
import random

import hypothesis.core
import pytest
from hypothesis import given, settings, strategies as st

from conftest import IMPORTED_BEFORE_THE_SUITE, record

DRAWS = {"random": [], "derandomized": []}
# Hypothesis mixes into its draws the literals of every imported module outside site-packages, as an editable
# install of the grader is (its modules load with the plugin, wherever it registers nothing): the draws are from a
# range that none of the grader's literals falls in, so that only what the plugin does can change them.
LARGE = st.integers(10**30, 10**30 + 10**12)


def test_plain(request, device):
    config = request.config
    names = (name for name, plugin in config.pluginmanager.list_name_plugin() if plugin is not None)  # not blocked
    record(test="plain", device=device, fixtures=sorted(request.fixturenames), random=random.random(),
           grader_seed=getattr(config.option, "grader_seed", None), markers=config.getini("markers"),
           imported_before_the_suite=IMPORTED_BEFORE_THE_SUITE,
           plugins=sorted(n for n in names if n and not n.isdigit()))


@given(LARGE)
def test_random_draws(n):
    DRAWS["random"].append(n)


@settings(derandomize=True)
@given(LARGE)
def test_derandomized_draws(n):
    DRAWS["derandomized"].append(n)


def test_fails_with_a_note():
    error = AssertionError("the suite's own failure")
    error.add_note("a note of its own")
    raise error


def test_what_hypothesis_did():
    record(test="hypothesis", draws=DRAWS, force_seed=hypothesis.core.global_force_seed,
           profile=settings.get_current_profile_name(), max_examples=settings.default.max_examples,
           derandomize=settings.default.derandomize)
'''


def _entry_point() -> str | None:
    """The name the grader's `pytest11` entry point is installed under, or None (a checkout that was not installed)."""
    return next((e.name for e in importlib.metadata.entry_points(group="pytest11")
                 if e.value == grader.pytest_entry.__name__), None)


ENTRY = _entry_point()
# (a): the plugin loaded as installed (or, uninstalled, by hand); (b): the same suite with the plugin disabled.
WITH_PLUGIN = () if ENTRY else ("-p", grader.pytest_entry.__name__)
WITHOUT_PLUGIN = ("-p", f"no:{ENTRY}") if ENTRY else ()


PLAIN_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


class Suite:
    """The foreign suite in a directory of its own, run in a pytest subprocess that imports this checkout's grader."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = 0
        (root / "suite").mkdir()
        (root / "suite" / "conftest.py").write_text(CONFTEST)
        (root / "suite" / "test_foreign.py").write_text(SUITE)

    def pytest(self, *args: str) -> tuple[int, str, list[dict[str, Any]]]:
        """Exit status, output (durations blanked) and the records of one run with `args`."""
        self.runs += 1
        log, storage = self.root / f"log-{self.runs}.jsonl", self.root / f"hypothesis-{self.runs}"
        # A developer's shell: no CI variables (under `CI` Hypothesis loads its own derandomized profile by itself,
        # and draws would repeat with the plugin or without), no PYTEST_ADDOPTS, not an xdist worker.
        env = {k: v for k, v in os.environ.items() if k in PLAIN_ENVIRONMENT}
        env.update(PYTHONPATH=str(REPO), FOREIGN_LOG=str(log), HYPOTHESIS_STORAGE_DIRECTORY=str(storage), PY_COLORS="0")
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                              cwd=self.root / "suite", env=env, capture_output=True, text=True, timeout=300)
        output = re.sub(r"\d+(\.\d+)?s\b", "<time>", done.stdout + done.stderr)
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return done.returncode, output, records


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    """The foreign suite, written once for this module's tests."""
    return Suite(tmp_path_factory.mktemp("foreign"))


def test_collection_is_unchanged(suite):
    with_plugin, without = suite.pytest("--collect-only", "-q", *WITH_PLUGIN), suite.pytest("--collect-only", "-q",
                                                                                            *WITHOUT_PLUGIN)
    assert with_plugin[:2] == without[:2] and "5 tests collected" in without[1], (with_plugin[1], without[1])


def test_no_fixture_is_added(suite):
    """`--fixtures -v` lists every fixture, autouse and underscored ones too (the header's plugin list aside)."""
    def listing(*args: str) -> tuple[int, list[str]]:
        code, output, _ = suite.pytest("--fixtures", "-v", *args)
        return code, [line for line in output.splitlines() if not line.startswith("plugins:")]

    with_plugin, without = listing(*WITH_PLUGIN), listing(*WITHOUT_PLUGIN)
    assert with_plugin == without, "\n".join(line for line in with_plugin[1] if line not in without[1])


def test_seeds_draws_and_results_are_unchanged(suite):
    (code, output, records), again = suite.pytest("-q", *WITH_PLUGIN), suite.pytest("-q", *WITH_PLUGIN)
    base_code, base_output, base_records = suite.pytest("-q", *WITHOUT_PLUGIN)
    assert (code, output) == (base_code, base_output), f"with the plugin:\n{output}\nwithout:\n{base_output}"
    assert code == 1 and "1 failed, 4 passed" in output, output

    def seen(records: list[dict[str, Any]], test: str) -> dict[str, Any]:
        return next(r for r in records if r.get("test") == test)

    plain, base_plain = seen(records, "plain"), seen(base_records, "plain")
    extra = set(plain.pop("plugins")) - set(base_plain.pop("plugins"))
    assert extra == {ENTRY or grader.pytest_entry.__name__, *grader.pytest_entry.pytest_plugins}, (
        f"registered besides the plugin's own modules: {sorted(extra)}")
    assert plain == base_plain  # fixtures (no autouse), the suite's own seed, option values, markers, imports
    assert [r for r in records if "report" in r] == [r for r in base_records if "report" in r]  # outcomes, messages

    drawn, base_drawn = seen(records, "hypothesis"), seen(base_records, "hypothesis")
    assert drawn["force_seed"] is None and drawn["draws"]["derandomized"] == base_drawn["draws"]["derandomized"]
    random_draws = drawn["draws"].pop("random"), seen(again[2], "hypothesis")["draws"]["random"]
    assert random_draws[0] != random_draws[1], "Hypothesis' seed was fixed: two runs drew the same examples"
    assert len(random_draws[0]) == len(base_drawn["draws"].pop("random"))
    assert drawn == base_drawn  # profile, max_examples, derandomize

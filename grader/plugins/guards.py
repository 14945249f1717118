"""Global state the submission changes, as verdicts: the judge's side of `grader.box.state`.

The submission runs in its box, one runner per puzzle, so nothing it changes reaches the judge or another puzzle.
Each reply from a runner carries its state report: settings the submission changed (undone when its call
returned), compiler config it set (left in place while its puzzle runs), and callables of the grader's
measurements, timers or torch that it replaced or whose code it swapped in place (put back at once). After every
grader test, the reports that test's calls brought are turned into verdicts:

- any change: `global_state_untouched` of that puzzle fails with what changed (reported, never scored);
- tampering: the test itself fails in teardown (a test that fails in teardown gives its criterion no value),
  since a measurement taken beside tampered code means nothing;
- a test whose calls brought no report at all (its runner never answered) says nothing about global state.
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from grader.box import reports
from grader.plugins.runtime import criterion_of, is_grading_run
from grader.scoring.results import ALSO
from grader.scoring.rubric import PUZZLES

REPORT_CRITERION = "global_state_untouched"
UNTOUCHED = ("timers, torch functions, the grader's measuring code, default dtype, backend flags and compiler config "
             "checked after every call: unchanged")


class Guard:
    """The pytest plugin object: each test's state reports, turned into verdicts at its teardown."""

    def __init__(self) -> None:
        self.reported: dict[str, set[str]] = {}

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        if criterion_of(item) is not None:
            reports.drain()  # what came before this test (a session fixture's start) is not its own
        return (yield)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        result = yield
        if criterion_of(item) is None:
            return result
        received = reports.drain()
        tampered: dict[str, list[str]] = {}
        for letter in dict.fromkeys(p for p, _ in received):
            changed = [line for p, r in received if p == letter for line in r["changed"]]
            tampering = list(dict.fromkeys(line for p, r in received if p == letter for line in r["tampered"]))
            seen = self.reported.setdefault(letter, set())
            fresh = [line for line in dict.fromkeys(changed + tampering) if line not in seen]
            seen.update(fresh)
            criterion = f"{letter}.{REPORT_CRITERION}"
            if fresh:
                detail = (f"puzzle {letter} ({PUZZLES[letter].entry_point}) changed global state in its box: "
                          + "; ".join(fresh) + " (settings are undone when its call returns; compiler config stays "
                          "while this puzzle runs; replaced or swapped functions are put back at once)")
                item.user_properties.append((ALSO, json.dumps([criterion, "failed", detail])))
            else:
                item.user_properties.append((ALSO, json.dumps([criterion, "passed", UNTOUCHED])))
            if tampering:
                tampered[letter] = tampering
        if tampered:
            said = "; ".join(f"puzzle {p} ({PUZZLES[p].entry_point}) tampered with functions the grader measures or "
                             f"compares with: " + "; ".join(lines) for p, lines in tampered.items())
            pytest.fail(said + ". They were put back; a test that sees tampering scores nothing.", pytrace=False)
        return result


def pytest_configure(config: pytest.Config) -> None:
    """Register the guard in a grading run only (`is_grading_run`); any other test run gets none."""
    if is_grading_run(config):
        config.pluginmanager.register(Guard(), "grader-guard")

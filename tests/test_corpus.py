"""Every submission of the corpus (tests/good, tests/broken, the references) gets the verdicts that
tests/expected/*.toml holds for it: broken ones fail on their criterion with their message, good ones
written in other styles than the reference pass. `scripts/gpu_verdicts.py` checks the same files on a GPU."""

from __future__ import annotations

import pytest

from grader.scoring import expectations
from tests.verdicts import REPO, grade

CASES = [case for path in sorted((REPO / "tests" / "expected").glob("*.toml")) for case in expectations.load(path)]


def _submission(case: expectations.Case) -> str:
    return str(REPO / case.submission) if case.submission.endswith(".py") else case.submission


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_submission_gets_its_expected_verdicts(pytester, monkeypatch, case):
    if case.only == "gpu":
        pytest.skip("a GPU fault: graded on a GPU only, by scripts/gpu_verdicts.py")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # a case's `-p tests.faults.NAME` plugin is imported from the checkout
    card = grade(pytester, _submission(case), puzzles=(case.puzzle,), criteria=case.qualified_criteria(),
                 extra=case.args)
    problems = expectations.mismatches(card, case, exit_code=card["exit_code"])
    assert not problems, "\n".join(problems) + "\n" + card["output"][-3000:]


def test_the_corpus_is_not_empty_and_ids_are_unique():
    """A corpus file that parsed to nothing, or two cases with one id, would hide a verdict."""
    for puzzle in ("A", "C", "D"):
        kinds = {c.kind for c in CASES if c.puzzle == puzzle}
        assert {"reference", "good", "broken"} <= kinds, f"puzzle {puzzle} needs its reference, good and broken cases"
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)

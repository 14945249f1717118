"""Every submission of the corpus (tests/good, tests/broken, the references) gets the verdicts that
tests/expected/*.toml holds for it: broken ones fail on their criterion with their message, good ones
written in other styles than the reference pass. `scripts/gpu_verdicts.py` checks the same files on a GPU."""

from __future__ import annotations

import pytest

from grader.scoring import expectations
from tests.verdicts import REPO, grade

CASES = [case for path in sorted((REPO / "tests" / "expected").glob("*.toml")) for case in expectations.load(path)]
CALL_DEADLINE_WORDS = "did not return within"  # a verdict given when a call's deadline ran out: the grading waited it


def _param(case: expectations.Case) -> object:
    waits = any(CALL_DEADLINE_WORDS in words for words in case.expected_words(on_gpu=False).values())
    return pytest.param(case, id=case.id, marks=[pytest.mark.waits(90)] if waits else [])


def _submission(case: expectations.Case) -> str:
    return str(REPO / case.submission) if case.submission.endswith(".py") else case.submission


@pytest.mark.slow
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
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

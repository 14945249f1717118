"""Expected verdicts for a corpus of submissions, and the check of a scorecard against them.

A corpus file is TOML, one per puzzle (this repository's are `tests/expected/*.toml`):

    puzzle = "A"

    [[case]]
    submission = "tests/good/a_fma_raw_launch.py"   # a path relative to the corpus root, or a module name
    kind = "good"                                   # good | broken | reference
    why = "FMA absmax decode, raw kernel[grid] launch"
    criteria = ["correct", "tested_in_f16_and_bf16"]  # the criteria graded; omitted: the whole puzzle
    args = ["-k", "linear4bit"]                       # extra pytest arguments for the grading run (optional)
    expect = { correct = "passed", tested_in_f16_and_bf16 = "passed" }   # every criterion graded
    expect_cpu = { }                                  # where a CPU decides otherwise (not_measured, say)
    expect_gpu = { }
    words = { correct = "ulp" }                       # text each criterion's detail must contain, on any device
    words_cpu = { }                                   # ... and on one kind of device only
    words_gpu = { }
    score = { cpu = 6, gpu = 14 }                     # optional
    only = "gpu"                                      # optional: graded on this kind of device alone

The CPU self-tests (`tests/test_corpus.py`) and the GPU verdict run (`scripts/gpu_verdicts.py`) read the
same files and call the same `mismatches`, so a verdict is held to one expectation on every device.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from grader.scoring.rubric import PUZZLES, Status
from grader.scoring.scorecard import INCOMPLETE_EXIT_STATUS

STATUSES = get_args(Status)


@dataclass(frozen=True)
class Case:
    """One submission graded on some criteria of one puzzle, with the verdicts it must get."""

    puzzle: str
    submission: str
    kind: str
    why: str
    criteria: tuple[str, ...]
    args: tuple[str, ...]
    expect: dict[str, str]
    expect_cpu: dict[str, str] = field(default_factory=dict)
    expect_gpu: dict[str, str] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)
    words_cpu: dict[str, str] = field(default_factory=dict)
    words_gpu: dict[str, str] = field(default_factory=dict)
    score: dict[str, int] = field(default_factory=dict)
    only: str | None = None  # "cpu" or "gpu": the case is graded on that kind of device alone

    @property
    def id(self) -> str:
        """A readable test id: the submission's name, and the criteria a broken one must fail (or those graded)."""
        name = Path(self.submission).stem if self.submission.endswith(".py") else self.submission
        if self.kind == "broken":
            name = "-".join([name, *(c for c, s in self.expect.items() if s == "failed")])
        elif 0 < len(self.criteria) <= 2:
            name = f"{name}-{'-'.join(self.criteria)}"
        return f"{self.puzzle}:{name}"

    def expected(self, on_gpu: bool) -> dict[str, str]:
        """criterion -> status expected on this kind of device."""
        return {**self.expect, **(self.expect_gpu if on_gpu else self.expect_cpu)}

    def expected_words(self, on_gpu: bool) -> dict[str, str]:
        """criterion -> text its detail must contain on this kind of device."""
        return {**self.words, **(self.words_gpu if on_gpu else self.words_cpu)}

    def qualified_criteria(self) -> tuple[str, ...]:
        """The graded criteria as `--criterion` takes them (`A.correct`)."""
        return tuple(f"{self.puzzle}.{c}" for c in self.criteria)


def load(path: Path) -> list[Case]:
    """The cases of one corpus file, checked against the rubric (an unknown criterion or status fails here)."""
    data = tomllib.loads(Path(path).read_text())
    puzzle = data["puzzle"]
    if puzzle not in PUZZLES:
        raise ValueError(f"{path}: unknown puzzle {puzzle!r}")
    cases = []
    for raw in data.get("case", []):
        case = Case(puzzle=puzzle, submission=raw["submission"], kind=raw["kind"], why=raw.get("why", ""),
                    criteria=tuple(raw.get("criteria", ())), args=tuple(raw.get("args", ())), expect=raw["expect"],
                    expect_cpu=raw.get("expect_cpu", {}), expect_gpu=raw.get("expect_gpu", {}),
                    words=raw.get("words", {}), words_cpu=raw.get("words_cpu", {}),
                    words_gpu=raw.get("words_gpu", {}), score=raw.get("score", {}), only=raw.get("only"))
        _validate(path, case)
        cases.append(case)
    return cases


def _validate(path: Path, case: Case) -> None:
    puzzle = PUZZLES[case.puzzle]
    if case.kind not in ("good", "broken", "reference"):
        raise ValueError(f"{path}: {case.submission}: kind must be good, broken or reference, not {case.kind!r}")
    named = [*case.criteria, *case.expect, *case.expect_cpu, *case.expect_gpu, *case.words, *case.words_cpu,
             *case.words_gpu]
    for name in named:
        puzzle.criterion(name)  # KeyError names the puzzle's criteria
    for table in (case.expect, case.expect_cpu, case.expect_gpu):
        bad = {c: s for c, s in table.items() if s not in STATUSES}
        if bad:
            raise ValueError(f"{path}: {case.submission}: unknown status {bad}; expected one of {STATUSES}")
    if case.only not in (None, "cpu", "gpu"):
        raise ValueError(f"{path}: {case.submission}: only must be cpu or gpu, not {case.only!r}")
    if case.kind == "broken" and "failed" not in {*case.expect.values(), *case.expect_gpu.values()}:
        raise ValueError(f"{path}: {case.submission}: a broken submission must be expected to fail a criterion")


def graded_on_gpu(card: dict[str, Any]) -> bool:
    """Whether a scorecard comes from a GPU run (its environment records a CUDA version only then)."""
    return bool(card["environment"].get("cuda"))


def mismatches(card: dict[str, Any], case: Case, exit_code: int | None = None) -> list[str]:
    """Every way the scorecard (and the run's exit status, if given) departs from the case's expectation."""
    on_gpu = graded_on_gpu(card)
    puzzle = card["puzzles"].get(case.puzzle)
    if puzzle is None:
        return [f"{case.id}: the scorecard has no puzzle {case.puzzle}"]
    got = {name: c["status"] for name, c in puzzle["criteria"].items()}
    want = case.expected(on_gpu)
    graded = set(case.criteria) if case.criteria else set(got)
    problems = []
    for name in sorted(graded | set(want)):
        status, expected = got.get(name, "absent"), want.get(name, "(no expectation)")
        if status != expected:
            detail = puzzle["criteria"].get(name, {}).get("detail", "")
            problems.append(f"{case.id}: {case.puzzle}.{name} is {status}, expected {expected}: {detail[:600]}")
    for name, text in case.expected_words(on_gpu).items():
        detail = puzzle["criteria"].get(name, {}).get("detail", "")
        if text not in detail:
            problems.append(f"{case.id}: {case.puzzle}.{name}'s detail does not say {text!r}: {detail[:600]}")
    expected_score = case.score.get("gpu" if on_gpu else "cpu")
    if expected_score is not None and puzzle["score"] != expected_score:
        problems.append(f"{case.id}: scored {puzzle['score']}, expected {expected_score}")
    if exit_code is not None:
        # A failed criterion is a failed test (report criteria never fail a run): the run exits 1. Else a gate not
        # decided, or a criterion the grader's own failure left unmeasured, makes it incomplete; else it exits 0.
        kinds = {c.name: c.kind for c in PUZZLES[case.puzzle].criteria}
        must_fail = any(s == "failed" and kinds[c] != "report" for c, s in want.items())
        undecided = any(s == "not_measured" and kinds[c] == "gate" for c, s in want.items())
        want_code = 1 if must_fail else INCOMPLETE_EXIT_STATUS if undecided else 0
        if exit_code != want_code:
            problems.append(f"{case.id}: exit status {exit_code}, expected {want_code}")
    return problems

"""README.md's criteria tables say what the rubric says: each puzzle's section (`### A: ...`) has a table naming every
criterion of that puzzle in `grader.scoring.rubric.PUZZLES`, and no other, with the points its rules give in the
rubric's order and its kind; and a criterion the reference is not measured on with a CPU (`expect_cpu` in
`tests/expected/*.toml`) is the one the table says only a GPU decides."""

from __future__ import annotations

import re

import pytest

from grader.scoring import expectations
from grader.scoring.rubric import PUZZLES, Puzzle
from tests.verdicts import REPO

README = REPO / "README.md"
HEADER = ("criterion", "points", "what it checks", "decided by")
POINTS = re.compile(r"[+-]\d+|score = \d+")  # `+3`, `-1`, and `score = 0` for a rule that sets the total


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def criteria_table(text: str, letter: str) -> dict[str, list[str]]:
    """The rows of the criteria table in puzzle `letter`'s section of `text`: criterion name -> its cells after the
    name. Fails when the section or its table is missing, or a criterion has two rows."""
    section = re.search(rf"^### {letter}: .*?(?=^##? |^### |\Z)", text, re.S | re.M)
    assert section, f"README.md has no section '### {letter}: ...'"
    lines = section.group(0).splitlines()
    start = next((i for i, line in enumerate(lines) if tuple(_cells(line)) == HEADER), None)
    assert start is not None, f"README.md's section on puzzle {letter} has no table headed {' | '.join(HEADER)}"
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        name, *rest = _cells(line)
        name = name.strip("`")
        assert name not in rows, f"puzzle {letter}'s table names {name} twice"
        rows[name] = rest
    return rows


def rule_points(puzzle: Puzzle, criterion: str) -> list[str]:
    """The points of the rules `criterion` owns, in the rubric's order, written as the tables write them."""
    return [f"{r.add:+d}" if r.set_to is None else f"score = {r.set_to}" for r in puzzle.rules
            if r.owner == criterion]


@pytest.mark.parametrize("letter", sorted(PUZZLES))
def test_every_criterion_is_in_its_puzzles_table_with_its_points(letter):
    puzzle = PUZZLES[letter]
    rows = criteria_table(README.read_text(), letter)
    names = [c.name for c in puzzle.criteria]
    assert sorted(set(names) - set(rows)) == [], f"puzzle {letter}: criteria missing from README.md's table"
    assert sorted(set(rows) - set(names)) == [], f"puzzle {letter}: README.md's table names criteria the rubric lacks"
    for c in puzzle.criteria:
        points = rows[c.name][0]
        assert POINTS.findall(points) == rule_points(puzzle, c.name), (
            f"{letter}.{c.name}: README.md gives {points!r}, the rubric {rule_points(puzzle, c.name) or 'no points'}")
        if c.kind in ("gate", "fault", "report"):
            assert c.kind in points, f"{letter}.{c.name} is a {c.kind}; README.md's points say {points!r}"


@pytest.mark.parametrize("letter", sorted(PUZZLES))
def test_only_a_gpu_decides_what_the_reference_is_not_measured_on_with_a_cpu(letter):
    rows = criteria_table(README.read_text(), letter)
    reference = next(case for case in expectations.load(REPO / "tests" / "expected" / f"{letter}.toml")
                     if case.kind == "reference")
    on_cpu = reference.expected(on_gpu=False)
    for name, cells in rows.items():
        gpu_only = on_cpu.get(name) == "not_measured"
        assert cells[2].startswith("GPU only") == gpu_only, (
            f"{letter}.{name}: the reference is {on_cpu.get(name)} on a CPU, README.md says decided by {cells[2]!r}")

"""Scorecards: the terminal table, the JSON file and a Markdown leaderboard row (the HTML report: `python -m
grader.report CARD.json -o PAGE.html`, grader.report.pages)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.scoring.rubric import PUZZLES, Outcome, Score

_MARK = {"passed": "PASS", "failed": "FAIL", "not_measured": "n/m ", "not_attempted": "--  "}
# A grading's exit status when it could not decide (a gate not measured, or the grader failed in its own work):
# distinct from pytest's own codes (0-5), so CI tells an incomplete grading from a failing one.
INCOMPLETE_EXIT_STATUS = 6
WIDE = 220  # the scorecard's width where no terminal says otherwise (a log, a pipe)
MIN_DETAIL = 80  # characters of a detail a row keeps however narrow the terminal (the terminal wraps the rest)


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON at `path`, parents created (values JSON cannot hold are written as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


@dataclass
class PuzzleCard:
    """One puzzle's graded criteria and score."""

    letter: str
    score: Score
    outcomes: dict[str, Outcome]
    tests: dict[str, list[str]] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # per criterion, the figures its tests recorded

    def incomplete_reasons(self) -> list[str]:
        """Why this puzzle's grading is incomplete: each unsettled gate and each criterion the grader's own failure
        left unmeasured, with its reason ([] when complete)."""
        s = self.score
        return ([f"gate {g} not decided: {self.outcomes[g].detail.splitlines()[0] if g in self.outcomes and self.outcomes[g].detail else 'not run'}"
                 for g in s.gates_unsettled]
                + [f"{name}: {self.outcomes[name].detail.splitlines()[0] if self.outcomes[name].detail else 'not measured'}"
                   for name in s.grader_failures if name not in s.gates_unsettled])

    def as_json(self) -> dict[str, Any]:
        """The JSON shape documented in the README."""
        s = self.score
        return {
            "title": PUZZLES[self.letter].title,
            "score": s.points,
            "max": s.max_points,
            "correct": s.verdict,
            "attempted": s.attempted,
            "provisional": s.provisional,
            "complete": s.complete,
            "incomplete": self.incomplete_reasons(),
            "notes": s.notes,
            "criteria": {
                name: {
                    "status": o.status,
                    "grader_failure": o.grader_failure,
                    "points": s.per_criterion.get(name, 0),
                    "value": o.value,
                    "detail": o.detail,
                    "tests": self.tests.get(name, []),
                    "data": self.data.get(name, {}),
                }
                for name, o in self.outcomes.items()
            },
        }


def score_cell(p: dict[str, Any]) -> str:
    """A puzzle's leaderboard cell from its card JSON: `score/max`, ✗ when a gate failed, ? when the grading was
    incomplete (a gate not settled, or the grader failed), * when provisional."""
    mark = " ✗" if p["correct"] is False else " ?" if p["correct"] is None or not p.get("complete", True) else ""
    return f"{p['score']}/{p['max']}{mark}" + ("*" if p["provisional"] else "")


def scorecard_json(*, submission: str, grader_seed: int, hypothesis_profile: str | None,
                   environment: dict[str, object] | None, reproduce: str | dict[str, str],
                   puzzles: dict[str, dict[str, Any]], box: dict[str, str] | None, **extra: Any) -> dict[str, Any]:
    """The scorecard's JSON, the one place its keys are written: by a grading run (`reproduce` its command) and
    by `grader.batch` (one card per submission from its puzzles' workers: `reproduce` per puzzle, plus `name`
    and `workers`). `puzzles` holds `PuzzleCard.as_json()` values; `box` the sandbox the submission ran in
    (`grader.box.sandbox.BoxInfo.as_json`, None when unknown)."""
    return {"submission": submission, "grader_seed": grader_seed, "hypothesis_profile": hypothesis_profile,
            "environment": environment, "reproduce": reproduce, "box": box,
            "provisional": any(p["provisional"] for p in puzzles.values()),
            "complete": all(p.get("complete", True) for p in puzzles.values()), "puzzles": puzzles, **extra}


@dataclass
class Scorecard:
    """Everything one grading run decided about one submission."""

    submission: str
    grader_seed: int
    hypothesis_profile: str
    environment: dict[str, object]
    puzzles: dict[str, PuzzleCard]
    reproduce: str
    box: dict[str, str] | None = None
    # GPU memory the grading held, bytes by part (grader.scoring.results.GraderSession.resources); None on a CPU
    resources: dict[str, int] | None = None
    # grader.plugins.benchmark_relay.summary: pytest-benchmark's, with a comparison
    benchmarks: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON-safe dict: submission, seed, environment, box, per puzzle score and criteria, and the run's
        pytest-benchmark figures where it recorded any."""
        return scorecard_json(submission=self.submission, grader_seed=self.grader_seed,
                              hypothesis_profile=self.hypothesis_profile, environment=self.environment,
                              reproduce=self.reproduce, puzzles={k: p.as_json() for k, p in self.puzzles.items()},
                              box=self.box, **({"benchmarks": self.benchmarks} if self.benchmarks else {}),
                              **({"resources": self.resources} if self.resources else {}))

    def write_json(self, path: Path) -> None:
        """Write the scorecard to `path` (parents created)."""
        write_json(path, self.as_json())

    def lines(self, width: int = WIDE, full_text_at: str | None = None) -> list[str]:
        """The terminal scorecard, one line per criterion, at most `width` characters (wider only to keep
        `MIN_DETAIL` of a detail). A detail that does not fit, or has more lines, is cut at a word and ends with a
        marker naming where the whole of it is: `failure_details` for a failed criterion, else `full_text_at` (the
        files the run writes, e.g. `--score-json`'s), else the option that would write it."""
        out = [f"submission: {self.submission}   device: {self.environment.get('device')}   "
               f"grader seed: {self.grader_seed}   hypothesis profile: {self.hypothesis_profile}", box_line(self.box)]
        for card in self.puzzles.values():
            s = card.score
            head = f"Puzzle {card.letter} ({PUZZLES[card.letter].title}): "
            if not s.attempted:
                out.append(head + "not attempted")
                continue
            verdict = f"{s.points}/{s.max_points}"
            if s.gates_failed:
                verdict += f"  (gate failed: {', '.join(s.gates_failed)}; the puzzle scores 0)"
            elif s.gates_unsettled:
                verdict += (f"  INCOMPLETE, provisional (gate not decided here: {', '.join(s.gates_unsettled)} not run "
                            f"or not measured; no score)")
            elif s.grader_failures:
                verdict += f"  INCOMPLETE (the grader failed in its own work: {', '.join(s.grader_failures)})"
            elif s.provisional:
                verdict += "  (provisional: some criteria were not measured on this machine)"
            out.append(head + verdict)
            for name, o in card.outcomes.items():
                pts = s.per_criterion.get(name)
                pts_s = f"{pts:+d}" if pts else "  "
                row = f"  {_MARK[o.status]} {pts_s:>3}  {name:<36} "
                rest = ("[... see 'why criteria failed' below]" if o.status == "failed" else
                        f"[... full text in {full_text_at}]" if full_text_at else "[... full text: --score-json PATH]")
                out.append(row + cut_detail(o.detail, max(width - len(row), MIN_DETAIL), rest))
            out.extend(f"  note: {n}" for n in s.notes)
        out.append(f"reproduce: {self.reproduce}")
        return out

    def failure_details(self) -> list[str]:
        """Full details of failed criteria (messages and shrunk examples)."""
        out = []
        for card in self.puzzles.values():
            for name, o in card.outcomes.items():
                if o.status == "failed" and o.detail:
                    out.append(f"--- {card.letter}.{name} failed:")
                    out.extend("    " + line for line in o.detail.splitlines())
        return out


def cut_detail(detail: str, room: int, marker: str) -> str:
    """`detail`'s first line if it is the whole detail and fits in `room` characters; otherwise as much of it as fits
    before `marker` (which says where the rest is), cut at a space where one is near."""
    lines = detail.splitlines()
    first = lines[0].rstrip() if lines else ""
    if len(lines) <= 1 and len(first) <= room:
        return first
    if len(first) + 1 + len(marker) <= room:
        return f"{first} {marker}".lstrip()
    keep = first[:max(room - len(marker) - 1, 0)]
    space = keep.rfind(" ")
    return f"{keep[:space] if space > len(keep) // 2 else keep} {marker}".lstrip()


def box_line(box: dict[str, str] | None) -> str:
    """The scorecard's line on the sandbox the submission ran in."""
    if not box:
        return "box: unknown"
    if box["kind"] == "bubblewrap":
        return f"box: bubblewrap {box['version']} ({box['detail']})"
    return f"box: NONE, the submission ran in a plain separate process with the grader's rights ({box['detail']})"


def leaderboard_markdown(cards: list[dict[str, Any]]) -> str:
    """A Markdown table over scorecard JSONs: one row per submission, one column per puzzle."""
    letters = sorted({k for c in cards for k in c["puzzles"]})
    rows = ["| submission | " + " | ".join(letters) + " | total |",
            "|---|" + "---|" * len(letters) + "---|"]
    ranked = sorted(cards, key=lambda c: -sum(p["score"] for p in c["puzzles"].values()))
    for c in ranked:
        cells = []
        for k in letters:
            p = c["puzzles"].get(k)
            if p is None or not p["attempted"]:
                cells.append("—")
            else:
                cell = score_cell(p)
                crit = p["criteria"].values()
                cell += f" [{sum(c['status'] == 'passed' for c in crit)}/{len(crit)}]"
                speed = p["criteria"].get("speedup", {}).get("value")
                cells.append(cell + (f" ({speed:.2f}×)" if isinstance(speed, (int, float)) else ""))
        total = sum(p["score"] for p in c["puzzles"].values())
        rows.append(f"| {c.get('name', c['submission'])} | " + " | ".join(cells) + f" | {total} |")
    rows.append("")
    shared = [w["side_by_side"] for c in cards for w in c.get("workers", {}).values() if w.get("side_by_side")]
    if shared:
        rows.append(f"GPU gradings ran up to {max(shared)} side by side on one GPU (each scorecard's workers."
                    f"side_by_side says how many shared its GPU).")
        rows.append("")
    rows.append("✗: a gate (correctness) failed; ?: grading incomplete (a gate not decided, or the grader failed "
                "in its own work); *: provisional, some criteria not measured on that machine; "
                "[p/n]: criteria passed of those graded; (x×): speedup.")
    return "\n".join(rows) + "\n"

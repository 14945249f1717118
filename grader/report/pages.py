"""The HTML report: one self-contained page per scorecard, and a batch's leaderboard page, from the JSON alone.

A page needs nothing beside itself (no network, no script or style from elsewhere): the style is inline, the
pictures inline SVG (`grader.report.svg_plots`), and the leaderboard's sorting a few lines of inline script. So a page
opens offline from a CI artifact, and any saved scorecard renders again:

    python -m grader.report CARD.json -o CARD.html          # a scorecard (--score-json, or a batch's scorecards/*.json)
    python -m grader.report OUT/leaderboard.json -o OUT/leaderboard.html   # a batch, with a page per submission
"""

from __future__ import annotations

import argparse
import html
import json
import shlex
from pathlib import Path
from typing import Any, Sequence

from grader.report import figures, svg_plots
from grader.scoring.rubric import PUZZLES
from grader.scoring.scorecard import box_line, score_cell

STATUS_TEXT = {"passed": "passed", "failed": "failed", "not_measured": "not measured", "not_attempted": "not attempted"}
STATUS_SHORT = {"passed": "pass", "failed": "FAIL", "not_measured": "n/m", "not_attempted": "—"}
NOT_GRADED = "·"  # a matrix cell whose criterion (or puzzle) this submission's run did not grade
CARD_PAGES = "scorecards"  # beside a leaderboard page: each submission's page, next to its JSON card

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #212121; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 2px solid #ddd; }
h3 { margin-top: 1.5em; }
code, pre { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { white-space: pre-wrap; word-break: break-word; margin: .3em 0; }
.meta { color: #555; margin: .2em 0; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
table.rubric td.detail { max-width: 560px; } table.rubric td.repro code { font-size: 11px; word-break: break-all; }
.status { font-weight: 600; white-space: nowrap; text-align: center; }
.s-passed { background: #e8f5e9; color: #1b5e20; } .s-failed { background: #ffebee; color: #b71c1c; }
.s-not_measured { background: #fff8e1; color: #7a5d00; } .s-not_attempted { background: #eeeeee; color: #616161; }
.score { float: right; font-size: .8em; padding: 2px 10px; border-radius: 4px; background: #e3f2fd; }
figure { margin: 1em 0; } figcaption { font-weight: 600; margin-bottom: .3em; }
figure svg { max-width: 100%; height: auto; }
.missing { color: #7a5d00; background: #fff8e1; padding: .4em .8em; border-left: 4px solid #f9a825; }
details summary { cursor: pointer; }
th.sortable { cursor: pointer; user-select: none; } th.sortable::after { content: " \\2195"; color: #999; }
th[aria-sort=descending]::after { content: " \\2193"; color: #000; }
th[aria-sort=ascending]::after { content: " \\2191"; color: #000; }
table.matrix th.crit { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: normal; font-size: 12px; }
table.matrix td { vertical-align: middle; white-space: nowrap; }
table.matrix th, table.matrix td { padding: 3px 4px; } table.matrix td.status { font-size: 11px; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: .5em; }
body.wide { max-width: none; } .scroll { overflow-x: auto; }
"""

SORT_SCRIPT = """
document.querySelectorAll("th.sortable").forEach(function (th) {
  th.addEventListener("click", function () {
    var key = "data-sort-" + th.dataset.key, body = document.querySelector("table.matrix tbody");
    var descending = th.getAttribute("aria-sort") !== "descending";
    var rows = Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var d = Number(b.getAttribute(key)) - Number(a.getAttribute(key));
      return (descending ? d : -d) || a.dataset.name.localeCompare(b.dataset.name);
    });
    document.querySelectorAll("th.sortable").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: list[str], script: str = "", *, wide: bool = False) -> str:
    tail = f"<script>{script}</script>\n" if script else ""
    opening = '<body class="wide">' if wide else "<body>"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n{opening}\n" + "\n".join(body) + f"\n{tail}</body>\n</html>\n")


def criterion_command(reproduce: str, letter: str, name: str) -> str:
    """The run's reproduce command narrowed to one criterion: its `--criterion` options replaced by this one."""
    args, kept, skip = shlex.split(reproduce), [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--criterion":
            skip = True
        elif not arg.startswith("--criterion="):
            kept.append(arg)
    return shlex.join([*kept, "--criterion", f"{letter}.{name}"])


def puzzle_verdict(letter: str, p: dict[str, Any]) -> str:
    """One line on a puzzle's score: not attempted, a gate failed or not passed, provisional, or final."""
    if not p.get("attempted", True):
        return "not attempted"
    verdict = f"{p.get('score')}/{p.get('max')}"
    if not p.get("correct"):
        criteria = p.get("criteria", {})
        gates = [c.name for c in PUZZLES[letter].criteria if c.kind == "gate"] if letter in PUZZLES else []
        failed = [g for g in gates if criteria.get(g, {}).get("status") == "failed"]
        return verdict + (f": gate failed ({', '.join(failed)}), the puzzle scores 0" if failed else
                          ": incomplete, a gate was not decided here (not run or not measured), no score")
    if not p.get("complete", True):
        return verdict + ": incomplete, the grader failed in its own work (" + "; ".join(p.get("incomplete", [])) + ")"
    if p.get("provisional"):
        return verdict + ", provisional: some criteria were not measured on this machine"
    return verdict


def _detail(text: str) -> str:
    """A criterion's detail: its first line, the rest folded."""
    lines = text.strip().splitlines()
    if len(lines) <= 1:
        return _e(text.strip())
    return f"<details><summary>{_e(lines[0])}</summary><pre>{_e(chr(10).join(lines[1:]))}</pre></details>"


def _rubric(letter: str, p: dict[str, Any], reproduce: str | None) -> list[str]:
    rows = ['<table class="rubric"><thead><tr><th>criterion</th><th>status</th><th>points</th><th>detail</th>'
            "<th>reproduce</th></tr></thead><tbody>"]
    for name, c in p.get("criteria", {}).items():
        status = c.get("status", "not_measured")
        points = c.get("points")
        command = criterion_command(reproduce, letter, name) if reproduce else ""
        rows.append(f'<tr id="{_e(letter)}.{_e(name)}"><td><code>{_e(name)}</code></td>'
                    f'<td class="status s-{_e(status)}">{_e(STATUS_TEXT.get(status, status))}</td>'
                    f'<td>{f"{points:+d}" if isinstance(points, int) and points else "0"}</td>'
                    f'<td class="detail">{_detail(c.get("detail") or "")}</td>'
                    f'<td class="repro"><code>{_e(command)}</code></td></tr>')
    rows.append("</tbody></table>")
    return rows


def _figure_html(fig: figures.Figure) -> str:
    head = f'<figure id="fig-{_e(fig.key)}" data-figure="{_e(fig.key)}"><figcaption>{_e(fig.title)}</figcaption>'
    if fig.data is None:
        return f'{head}<p class="missing">{_e(fig.missing)}</p></figure>'
    if isinstance(fig.data, figures.GraphBreaks):
        if not fig.data.breaks:
            return f"{head}<p>no graph break over the run</p></figure>"
        rows = "".join(f"<tr><td><code>{_e(where)}</code></td><td><code>{_e(source)}</code></td><td>{_e(why)}</td></tr>"
                       for where, why, source in fig.data.breaks)
        return (f'{head}<table class="breaks"><thead><tr><th>location</th><th>source line</th><th>reason</th></tr>'
                f"</thead><tbody>{rows}</tbody></table></figure>")
    extra = ""
    if isinstance(fig.data, figures.Compilations) and fig.data.recompiles:
        items = "".join(f"<li><code>{_e(fn)}</code>: {_e(why)}</li>" for fn, why in fig.data.recompiles)
        extra = f"<details><summary>{len(fig.data.recompiles)} recompile reason(s)</summary><ul>{items}</ul></details>"
    return f'{head}<div class="plot">{svg_plots.svg(fig)}</div>{extra}</figure>'


def _puzzle_section(letter: str, p: dict[str, Any], reproduce: str | None) -> list[str]:
    title = p.get("title") or (PUZZLES[letter].title if letter in PUZZLES else "")
    out = [f'<section class="puzzle" id="puzzle-{_e(letter)}">',
           f'<h2>Puzzle {_e(letter)}: {_e(title)} <span class="score">{_e(p.get("score"))}/{_e(p.get("max"))}</span>'
           "</h2>", f'<p class="verdict">{_e(puzzle_verdict(letter, p))}</p>']
    if p.get("attempted", True):
        out += _rubric(letter, p, reproduce)
        out += [f'<p class="note">note: {_e(n)}</p>' for n in p.get("notes", [])]
        out.append("<h3>Pictures</h3>")
        out += [_figure_html(fig) for fig in figures.figures(letter, p)]
    out.append("</section>")
    return out


def card_page(card: dict[str, Any], *, back: str | None = None) -> str:
    """A scorecard's page: the run, then per puzzle its rubric table and pictures. `back` links to a leaderboard."""
    name = card.get("name") or card.get("submission", "")
    env = card.get("environment") or {}
    reproduce = card.get("reproduce")
    body = [f'<p><a href="{_e(back)}">&larr; leaderboard</a></p>' if back else "",
            f"<h1>Scorecard: {_e(name)}</h1>",
            f'<p class="meta">submission <code>{_e(card.get("submission"))}</code> · grader seed '
            f'{_e(card.get("grader_seed"))} · Hypothesis profile {_e(card.get("hypothesis_profile"))}'
            + (" · <strong>provisional</strong>: some criteria were not measured on this machine"
               if card.get("provisional") else "") + "</p>",
            f'<p class="meta">{_e(box_line(card.get("box")))}</p>']
    if env:
        body.append('<table class="env"><tbody>' + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                                                           for k, v in env.items()) + "</tbody></table>")
    if isinstance(reproduce, str):
        body.append(f'<p>reproduce: <code class="reproduce">{_e(reproduce)}</code></p>')
    for letter, w in (card.get("workers") or {}).items():
        body.append(f'<p class="meta">worker {_e(letter)}: exit {_e(w.get("exit_code"))}, {_e(w.get("seconds"))} s'
                    + (f"; {_e(w['reason'])}" if w.get("reason") else "") + "</p>")
    puzzles = card.get("puzzles", {})
    body.append("<nav>" + " · ".join(f'<a href="#puzzle-{_e(k)}">Puzzle {_e(k)}: {_e(p.get("score"))}/'
                                     f'{_e(p.get("max"))}</a>' for k, p in puzzles.items()) + "</nav>")
    for letter, p in puzzles.items():
        per_puzzle = reproduce.get(letter) if isinstance(reproduce, dict) else reproduce
        body += _puzzle_section(letter, p, per_puzzle)
    if card.get("benchmarks"):
        body += _benchmarks_section(card["benchmarks"])
    return _page(f"Scorecard: {name}", body)


def _benchmarks_section(benchmarks: dict[str, Any]) -> list[str]:
    """pytest-benchmark's figures of the run: each benchmark's median and rounds, and beside it the saved run that
    `--benchmark-compare` loaded (its median and the ratio now / then), when there was one."""
    saved = benchmarks.get("compared_with")
    rows = []
    for b in benchmarks.get("entries", []):
        now, then = b.get("median_s"), b.get("previous_median_s")
        ratio = f"{now / then:.3f}x" if now and then else "no saved figure"
        rows.append(f"<tr><td>{_e(b.get('group'))}</td><td><code>{_e(b.get('name'))}</code></td>"
                    f"<td>{_e(_seconds(now))}</td><td>{_e(b.get('rounds'))}</td>"
                    + (f"<td>{_e(_seconds(then))}</td><td>{_e(ratio)}</td>" if saved else "") + "</tr>")
    head = "<th>group</th><th>benchmark</th><th>median</th><th>rounds</th>" + (
        f"<th>median in {_e(saved)}</th><th>now / then</th>" if saved else "")
    said = (f"compared with the saved run {_e(saved)} (<code>--benchmark-compare</code>)" if saved else
            "no saved run compared (<code>--benchmark-autosave</code> keeps one, <code>--benchmark-compare</code> "
            "compares with it)")
    return ['<h2 id="benchmarks">pytest-benchmark</h2>', f"<p>{said}</p>",
            f'<table class="benchmarks"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>']


def _seconds(value: float | None) -> str:
    """'12.3 µs' style: a median in the unit that suits it."""
    if value is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e-9:.4g} ns"


def _total(card: dict[str, Any]) -> int:
    return sum(p.get("score") or 0 for p in card.get("puzzles", {}).values())


def _score_cell(p: dict[str, Any] | None) -> tuple[str, int]:
    """A puzzle's score cell text and its sort value (-1: not attempted or not graded)."""
    if p is None:
        return NOT_GRADED, -1
    if not p.get("attempted", True):
        return "—", -1
    return score_cell(p), int(p.get("score") or 0)


def leaderboard_page(cards: list[dict[str, Any]], pages: dict[str, str]) -> str:
    """The submissions x criteria matrix, sortable by total and by each puzzle's score; `pages` maps a card's name
    to its page's address."""
    letters = sorted({k for c in cards for k in c.get("puzzles", {})})
    criteria = {k: [c.name for c in PUZZLES[k].criteria] if k in PUZZLES else
                sorted({n for c in cards for n in c["puzzles"].get(k, {}).get("criteria", {})}) for k in letters}
    head1 = ['<th rowspan="2">submission</th>',
             '<th rowspan="2" class="sortable" data-key="total">total</th>']
    head2 = []
    for k in letters:
        head1.append(f'<th colspan="{len(criteria[k]) + 1}">Puzzle {_e(k)}</th>')
        head2.append(f'<th class="sortable" data-key="{_e(k.lower())}">{_e(k)} score</th>')
        head2 += [f'<th class="crit" title="{_e(k)}.{_e(n)}">{_e(n)}</th>' for n in criteria[k]]
    rows = []
    for card in sorted(cards, key=lambda c: (-_total(c), str(c.get("name")))):
        name = str(card.get("name") or card.get("submission"))
        sorts, cells = {"total": _total(card)}, []
        for k in letters:
            p = card.get("puzzles", {}).get(k)
            text, sorts[k.lower()] = _score_cell(p)
            cells.append(f"<td>{_e(text)}</td>")
            for n in criteria[k]:
                c = (p or {}).get("criteria", {}).get(n)
                if c is None:
                    cells.append(f'<td class="status" title="{_e(k)}.{_e(n)}: not graded in this run">{NOT_GRADED}</td>')
                    continue
                status = c.get("status", "not_measured")
                first = (c.get("detail") or "").strip().splitlines()[:1]
                tip = f"{k}.{n}: {STATUS_TEXT.get(status, status)}" + (f": {first[0][:200]}" if first else "")
                cells.append(f'<td class="status s-{_e(status)}" title="{_e(tip)}">'
                             f"{_e(STATUS_SHORT.get(status, status))}</td>")
        attrs = " ".join(f'data-sort-{key}="{value}"' for key, value in sorts.items())
        link = pages.get(name)
        label = f'<a href="{_e(link)}">{_e(name)}</a>' if link else _e(name)
        rows.append(f'<tr data-name="{_e(name)}" {attrs}><td>{label}</td><td>{sorts["total"]}</td>{"".join(cells)}</tr>')
    seeds = sorted({str(c.get("grader_seed")) for c in cards})
    legend = " ".join(f'<span class="s-{s}">{_e(STATUS_SHORT[s])}: {_e(t)}</span>' for s, t in STATUS_TEXT.items())
    body = ["<h1>Leaderboard</h1>",
            f'<p class="meta">{len(cards)} submissions · grader seed(s) {_e(", ".join(seeds))} · click a score header '
            "to sort; a submission's name opens its scorecard</p>",
            f'<p class="legend">{legend} <span>{NOT_GRADED}: not graded in this run</span> · ✗: a gate failed (the puzzle '
            "scores 0) · ?: grading incomplete (a gate not decided, or the grader failed in its own work) · *: provisional, "
            "some criteria not measured on that machine</p>",
            f'<div class="scroll"><table class="matrix"><thead><tr>{"".join(head1)}</tr><tr>{"".join(head2)}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>']
    return _page("Leaderboard", body, SORT_SCRIPT, wide=True)


def write_card_page(card: dict[str, Any], path: Path, *, back: str | None = None) -> None:
    """Write `card_page(card)` to `path` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card_page(card, back=back), encoding="utf-8")


def write_leaderboard_pages(cards: list[dict[str, Any]], path: Path) -> None:
    """The leaderboard page at `path`, and each card's page in `CARD_PAGES/NAME.html` beside it, linked both ways."""
    pages = {}
    for card in cards:
        name = str(card.get("name") or card.get("submission"))
        relative = f"{CARD_PAGES}/{Path(name).name}.html"
        write_card_page(card, path.parent / relative, back=f"../{path.name}")
        pages[name] = relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(leaderboard_page(cards, pages), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m grader.report CARD.json -o PAGE.html`: render a saved scorecard, or a batch's leaderboard.json
    (then each submission's page too, in scorecards/ beside the page)."""
    parser = argparse.ArgumentParser(prog="python -m grader.report", description=main.__doc__.split("\n")[0])
    parser.add_argument("card", type=Path, help="a scorecard JSON (--score-json, a batch's scorecards/NAME.json) "
                        "or a batch's leaderboard.json")
    parser.add_argument("-o", "--output", type=Path, default=None, help="the HTML file (default: CARD with .html)")
    args = parser.parse_args(argv)
    data = json.loads(args.card.read_text())
    if not isinstance(data, dict) or not ("puzzles" in data or "submissions" in data):
        parser.error(f"{args.card} is neither a scorecard (--score-json) nor a batch's leaderboard.json")
    out = args.output or args.card.with_suffix(".html")
    if "submissions" in data:
        write_leaderboard_pages(data["submissions"], out)
    else:
        write_card_page(data, out)
    print(f"grader.report: wrote {out}")
    return 0

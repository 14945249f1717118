"""The HTML report: the data each picture draws (from hand-made cards and from real CPU gradings), the pages built
from a scorecard alone, `--report-html` on a grading run whose gate fails, the batch's leaderboard page, and the pages
as a person sees them, in a real headless browser (Debian's chromium driven by playwright, installed by
`bash scripts/setup.sh cluster browser`; missing, the browser test fails and says so)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from grader.puzzle_a.standard import MAP_ROWS, wrong_map
from grader.report import figures, pages, svg_plots
from grader.scoring.results import merge_data
from grader.scoring.rubric import PUZZLES
from tests.batching import run_batch, scorecard
from tests.verdicts import BROKEN, grade

BROKEN_A_AND_D = '''"""Broken on A (rounds toward zero) and on D (the full logits in one piece): pictures of both faults."""
from tests.broken.a_truncates_bf16 import dequantize_nf4  # noqa: F401
from tests.broken.d_full_logits_in_one_piece import memory_efficient_linear  # noqa: F401
'''
# Cheap criteria with pictures: A's correct on the Linear4bit weights, D's peaks and cross-entropy errors.
GRADED = ["--criterion", "A.correct", "--criterion", "D.correct", "--criterion", "D.VRAM_50_percent_reduction",
          "-k", "linear4bit or peak_memory or cross_entropy_matches", "--hypothesis-profile", "ci"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETUP = "run `bash scripts/setup.sh cluster browser` (CI's setup), which installs playwright and Debian's chromium"


def _criterion(status: str, detail: str = "", data: dict[str, Any] | None = None, points: int = 0) -> dict[str, Any]:
    return {"status": status, "points": points, "value": None, "detail": detail, "tests": [], "data": data or {}}


def _puzzle(criteria: dict[str, dict[str, Any]], *, score: int = 0, correct: bool = True) -> dict[str, Any]:
    return {"title": "t", "score": score, "max": 14, "correct": correct, "attempted": True, "provisional": False,
            "notes": [], "criteria": criteria}


def _card(puzzles: dict[str, dict[str, Any]], name: str = "hand-made") -> dict[str, Any]:
    return {"submission": f"{name}.py", "name": name, "grader_seed": 1, "hypothesis_profile": "ci",
            "environment": {"device": "cpu"}, "reproduce": "pytest grader/ --submission x.py --criterion A.correct "
            "--grader-seed 1 --hypothesis-profile ci", "box": None, "provisional": False, "puzzles": puzzles}


SPEED = {"per_weight": [{"weight": "gate_proj (2048, 8192) float16", "candidate_us": 40.0, "fast_dequantize_us": 50.0,
                         "bnb_us": 60.0, "floor_us": 30.0, "copy_bandwidth_pct": 75.0},
                        {"weight": "down_proj (8192, 2048) bfloat16", "candidate_us": 41.0, "fast_dequantize_us": 52.0,
                         "bnb_us": 63.0, "floor_us": None, "copy_bandwidth_pct": None}],
         "passes": [1.21, 1.23], "copy_bandwidth_gbs": 3000.0}
DEVIATIONS = {q: {"floor": 1e-3, "tolerance": 3e-3,
                  "run": [{"at": "step 0", "value": 2e-3, "where": "step 0, w"}, {"at": "step 1", "value": None}],
                  "floor_run": [{"at": "step 1", "value": 5e-4}]} for q in figures.QUANTITIES}


# ---------------------------------------------------------------- the data each picture draws


def test_recorded_figures_merge_per_criterion_later_values_winning():
    merged = merge_data([{"errors": {"MSE": {"worst": 0.2}}, "peaks": [1]},
                         {"errors": {"KL": {"worst": 0.3}, "MSE": {"worst": 0.4}}, "peaks": [2]}])
    assert merged == {"errors": {"MSE": {"worst": 0.4}, "KL": {"worst": 0.3}}, "peaks": [2]}


def test_the_wrong_element_map_tells_a_partial_block_from_a_rounding_fault():
    n, blocksize = 64 * 3 + 8, 64  # three whole blocks and a partial one of 8 elements
    partial = torch.zeros(n, dtype=torch.bool)
    partial[192:] = True
    m = wrong_map(partial, numel=n, blocksize=blocksize)
    assert (m["blocks"], m["blocks_per_row"], m["wrong"], m["judged"]) == (4, 1, 8, n)
    assert [sum(row) for row in m["counts"]] == [0, 0, 0, 8] and m["counts"][3][:8] == [1] * 8
    everywhere = torch.zeros(64 * 1000, dtype=torch.bool)
    everywhere[::3] = True
    m = wrong_map(everywhere, numel=everywhere.numel(), blocksize=64)
    assert len(m["counts"]) <= MAP_ROWS and m["blocks_per_row"] == 16
    assert sum(map(sum, m["counts"])) == m["wrong"] == everywhere.sum() and all(sum(r) for r in m["counts"])
    sampled = wrong_map(torch.tensor([False, True]), numel=10_000, blocksize=64, at=torch.tensor([5, 9_999]))
    assert sampled["judged"] == 2 and sampled["counts"][9_999 // 64 // sampled["blocks_per_row"]][9_999 % 64] == 1


def test_a_pictures_draw_the_kernel_times_and_the_maps():
    m = wrong_map(torch.ones(100, dtype=torch.bool), numel=100, blocksize=64)
    puzzle = _puzzle({"speedup": _criterion("passed", data=SPEED),
                      "correct": _criterion("failed", data={"wrong_elements": {"small": wrong_map(
                          torch.ones(3, dtype=torch.bool), numel=3, blocksize=64), "big": m}})}, correct=False)
    speed, *maps = figures.figures("A", puzzle)
    assert speed.data.weights == ["gate_proj (2048, 8192) float16", "down_proj (8192, 2048) bfloat16"]
    assert speed.data.times_us == {"candidate": [40.0, 41.0], "fast_dequantize": [50.0, 52.0], "bnb": [60.0, 63.0]}
    assert speed.data.floor_us == [30.0, None] and speed.data.bandwidth_pct == [75.0, None]
    assert speed.data.passes == [1.21, 1.23]
    assert [f.data.input for f in maps] == ["big", "small"]  # the largest input first
    assert maps[0].data.counts == m["counts"] and maps[0].data.wrong == 100


def test_a_picture_without_its_data_says_why_instead_of_drawing():
    measured = _puzzle({"speedup": _criterion("not_measured", "speed is measured on a GPU only"),
                        "correct": _criterion("passed")})
    speed, wrong = figures.figures("A", measured)
    assert speed.data is None and speed.missing == ("not recorded: A.speedup was not measured (speed is measured on "
                                                    "a GPU only)")
    assert wrong.data is None and wrong.missing == "no wrong element: A.correct passed"
    ungraded, _ = figures.figures("A", _puzzle({}))
    assert ungraded.missing == "not recorded: A.speedup was not graded in this run"
    malformed = _puzzle({"correct": _criterion("failed", data={"wrong_elements": {"x": {"counts": [["a"]]}}})})
    assert figures.figures("A", malformed)[1].data is None  # a value of the wrong type is not drawn
    garbage = {key: 7 for key in ("per_weight", "passes", "wrong_elements", "peaks", "errors", "compilations",
                                  "graph_breaks", "deviations", "performance")}
    for letter in ("A", "C", "D"):
        anything = _puzzle({c.name: _criterion("passed", data=garbage) for c in PUZZLES[letter].criteria})
        assert [f.data for f in figures.figures(letter, anything)] == [None] * len(figures.figures(letter, anything))
    page = pages.card_page(_card({"A": measured}))
    assert page.count('class="missing"') == 2 and "<svg" not in page


def _d_puzzle() -> dict[str, Any]:
    peak = {"candidate_bytes": 3 * 2**30, "naive_bytes": 24 * 2**30, "limit": 0.5, "where": "fake tensors"}
    return _puzzle({"correct": _criterion("passed", data={"errors": {"cross-entropy": {
                        "worst": 0.2, "problems": 9, "over": 0}}}),
                    "VRAM_50_percent_reduction": _criterion("passed", data={"peaks": {"cross-entropy": peak}}),
                    "show_other_functions_work": _criterion("failed", data={"errors": {
                        "MSE": {"worst": None, "problems": 3, "over": 1}}})})


def _c_puzzle() -> dict[str, Any]:
    micro = [{"step": 0, "batch": 2, "length": 48, "compilations": 3}, {"step": 0, "batch": 2, "length": 61,
                                                                         "compilations": 1}]
    return _puzzle({
        "excessive_recompilation": _criterion("passed", data={"compilations": {
            "total": 4, "limit": 30, "micro": micro, "recompiles": [{"function": "f (a.py:1)", "reason": "size"}]}}),
        "no_graph_breaks": _criterion("failed", data={"graph_breaks": [
            {"location": "s.py:14", "reason": "item()", "source": "if x.item():"}]}),
        "correct": _criterion("passed", data={"deviations": DEVIATIONS, "performance": {
            "steady_step_s": {"compiled": 0.2, "eager": 0.8}, "peak_bytes": {"compiled": 2.0, "eager": 4.0},
            "compile_overhead_s": 30.0}})})


def _a_puzzle() -> dict[str, Any]:
    return _puzzle({"speedup": _criterion("passed", data=SPEED), "correct": _criterion(
        "failed", data={"wrong_elements": {"w": wrong_map(torch.ones(70, dtype=torch.bool), numel=70, blocksize=64)}})})


def test_d_pictures_draw_the_peaks_and_the_errors_per_loss():
    peaks, errors = figures.figures("D", _d_puzzle())
    assert (peaks.data.losses, peaks.data.candidate, peaks.data.naive, peaks.data.limit) == (
        ["cross-entropy"], [3.0 * 2**30], [24.0 * 2**30], 0.5)
    assert errors.data.labels == ["correct: cross-entropy", "show_other_functions_work: MSE"]
    assert (errors.data.worst, errors.data.over, errors.data.problems) == ([0.2, None], [0, 1], [9, 3])


def test_c_pictures_draw_compilations_breaks_deviations_and_performance():
    comp, breaks, dev, perf = figures.figures("C", _c_puzzle())
    assert (comp.data.labels, comp.data.lengths, comp.data.counts) == (["step 0, 2x48", "step 0, 2x61"], [48, 61], [3, 1])
    assert comp.data.recompiles == [("f (a.py:1)", "size")] and (comp.data.total, comp.data.limit) == (4, 30)
    assert breaks.data.breaks == [("s.py:14", "item()", "if x.item():")]
    loss = dev.data.quantities[0]
    assert (loss.at, loss.run, loss.floor_run, loss.floor, loss.tolerance) == (
        ["step 0", "step 1"], [2e-3, None], [None, 5e-4], 1e-3, 3e-3)
    assert perf.data.steady_step_s == (0.2, 0.8) and perf.data.peak_bytes == (2.0, 4.0)
    none = figures.figures("C", _puzzle({"no_graph_breaks": _criterion("passed", data={"graph_breaks": []}),
                                         "correct": _criterion("passed")}))
    assert none[1].data.breaks == [] and none[3].missing.startswith("not recorded in this scorecard")


def test_every_picture_is_an_inline_svg_that_fetches_nothing():
    card = _card({"A": _a_puzzle(), "C": _c_puzzle(), "D": _d_puzzle()})
    shown = [f for k, p in card["puzzles"].items() for f in figures.figures(k, p)
             if f.data is not None and not isinstance(f.data, figures.GraphBreaks)]
    assert len(shown) == 2 + 3 + 2  # A: times, map; C: compilations, deviations, performance; D: peaks, errors
    for fig in shown:
        svg = svg_plots.svg(fig)
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "<?xml" not in svg
        assert not re.search(r'(href|src)="(?!#|data:)', svg), "an SVG refers to something outside itself"
    assert "speedup over fast_dequantize per pass: 1.210x, 1.230x" in svg_plots.svg(shown[0])  # text stays text
    page = pages.card_page(card)
    assert page.count("<svg") == len(shown) and "<code>if x.item():</code>" in page  # the graph break's table
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "two pictures of a page share an id"


def test_a_card_page_escapes_what_it_shows_and_narrows_each_reproduce_command():
    detail = "<script>alert(1)</script> first line\nsecond line"
    page = pages.card_page(_card({"A": _puzzle({"correct": _criterion("failed", detail)}, correct=False)}))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; first line" in page
    assert "gate failed (correct), the puzzle scores 0" in page
    assert pages.criterion_command("pytest grader/ --criterion A.correct --criterion=A.speedup -k x", "D",
                                         "correct") == "pytest grader/ -k x --criterion D.correct"


def test_the_leaderboard_ranks_by_total_and_carries_each_puzzle_score_to_sort_by():
    good = _card({"A": _puzzle({"correct": _criterion("passed")}, score=6)}, name="good")
    bad = _card({"A": _puzzle({"correct": _criterion("failed")}, correct=False)}, name="bad")
    page = pages.leaderboard_page([bad, good], {"good": "scorecards/good.html"})
    rows = re.findall(r'<tr data-name="(\w+)" data-sort-total="(\d+)" data-sort-a="(-?\d+)">', page)
    assert rows == [("good", "6", "6"), ("bad", "0", "0")]
    assert '<a href="scorecards/good.html">good</a>' in page and 'class="status s-failed"' in page
    assert 'class="sortable" data-key="total"' in page and 'data-key="a"' in page


def test_a_saved_card_or_leaderboard_renders_again_from_the_command_line(tmp_path, capsys):
    card = _card({"A": _puzzle({"speedup": _criterion("passed", data=SPEED)})}, name="mine")
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert pages.main([str(tmp_path / "card.json")]) == 0
    assert (tmp_path / "card.html").read_text() == pages.card_page(card)
    (tmp_path / "board.json").write_text(json.dumps({"grader_seeds": [1], "submissions": [card]}))
    assert pages.main([str(tmp_path / "board.json"), "-o", str(tmp_path / "out" / "board.html")]) == 0
    assert 'href="scorecards/mine.html"' in (tmp_path / "out" / "board.html").read_text()
    assert (tmp_path / "out" / "scorecards" / "mine.html").read_text() == pages.card_page(card, back="../board.html")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(SystemExit) as stop:
        pages.main([str(tmp_path / "other.json")])
    assert stop.value.code == 2 and "neither a scorecard" in capsys.readouterr().err


KEPT_CARDS = sorted((Path(__file__).resolve().parent.parent / "docs" / "cards").glob("*/*.json"))


@pytest.mark.parametrize("path", KEPT_CARDS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_scorecard_kept_with_the_benchmarks_renders(path, tmp_path):
    """The GPU runs' cards that BENCHMARKS.md cites (docs/cards/) render with the command a reviewer uses: every
    puzzle's score and every criterion's status on the page."""
    card = json.loads(path.read_text())
    assert pages.main([str(path), "-o", str(tmp_path / "card.html")]) == 0
    page = (tmp_path / "card.html").read_text()
    for letter, p in card["puzzles"].items():
        assert f"Puzzle {letter}: {p['score']}/{p['max']}" in page
        for name, c in p["criteria"].items():
            row = f'<tr id="{letter}.{name}"><td><code>{name}</code></td><td class="status s-{c["status"]}">'
            assert row in page, row


# ---------------------------------------------------------------- real gradings


@pytest.mark.slow
def test_a_grading_whose_gate_fails_still_writes_its_report_with_the_wrong_elements(pytester):
    """The default (isolated) run: the data crosses from the worker, and the page is written though the gate failed."""
    page = pytester.path / "report" / "card.html"
    card = grade(pytester, BROKEN / "a_truncates_bf16.py", puzzles=("A",), criteria=("A.correct",), isolated=True,
                 extra=("-k", "linear4bit", "--report-html", str(page)))
    assert card["exit_code"] != 0 and card["puzzles"]["A"]["criteria"]["correct"]["status"] == "failed"
    maps = card["puzzles"]["A"]["criteria"]["correct"]["data"]["wrong_elements"]
    assert sorted(maps) == ["Linear4bit(192, 320), bfloat16", "Linear4bit(192, 320), float16"], maps
    for m in maps.values():
        assert m["numel"] == 192 * 320 and m["blocks"] == 960 and sum(map(sum, m["counts"])) == m["wrong"] > 0
    assert "--report-html" not in card["reproduce"]
    text = page.read_text()
    assert text == pages.card_page({k: v for k, v in card.items() if k not in ("exit_code", "output")})
    assert text.count("<svg") == 2 and 'data-figure="A.wrong_elements.1"' in text


def test_a_report_that_cannot_be_written_fails_the_run_and_says_why(pytester):
    """The scorecard is still written and printed; the run exits 3 (the grader's own failure), naming the page."""
    (pytester.path / "taken").write_text("a file, not a folder")
    card = grade(pytester, "solutions", puzzles=("A",), criteria=("A.correct",),
                 extra=("-k", "linear4bit", "--report-html", str(pytester.path / "taken" / "card.html")))
    assert card["puzzles"]["A"]["criteria"]["correct"]["status"] == "passed"
    assert card["exit_code"] == 3 and "grader scorecard" in card["output"], card["output"][-2000:]
    assert re.search(r"grader: --report-html \S+taken/card.html: not written \(FileExistsError", card["output"])


@pytest.fixture
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch run of the reference and of a submission broken on A and D, graded on cheap criteria (once a session)."""
    subs = tmp_path_factory.getbasetemp().parent / "report-subs"
    subs.mkdir(exist_ok=True)
    (subs / "broken_a_d.py").write_text(BROKEN_A_AND_D)
    out, _ = run_batch(tmp_path_factory, "report-batch", [str(subs / "broken_a_d.py"), "solutions", "--jobs", "2",
                                                          "--", *GRADED])
    return out


@pytest.mark.slow
def test_the_batch_and_its_merge_write_a_page_per_submission_with_the_pictures_of_its_data(batch, tmp_path_factory):
    good, broken = scorecard(batch, "solutions"), scorecard(batch, "broken_a_d")
    peaks = figures.peaks(broken["puzzles"]["D"]).data
    assert peaks.candidate[0] > peaks.limit * peaks.naive[0], "the one-piece loss keeps its full logits"
    peaks = figures.peaks(good["puzzles"]["D"]).data
    assert peaks.losses == ["cross-entropy"] and peaks.candidate[0] <= peaks.limit * peaks.naive[0]
    errors = figures.errors(good["puzzles"]["D"]).data
    assert errors.labels == ["correct: cross-entropy"] and 0 < errors.worst[0] <= 1 and errors.over == [0]
    assert [f.data.wrong > 0 for f in figures.wrong_maps(broken["puzzles"]["A"])] == [True, True]
    assert figures.wrong_maps(good["puzzles"]["A"])[0].missing == "no wrong element: A.correct passed"
    merged, _ = run_batch(tmp_path_factory, "report-merged", ["--merge", str(batch)])
    for out in (batch, merged):
        board = (out / "leaderboard.html").read_text()
        assert board.count('<tr data-name="') == 2 and 'href="scorecards/solutions.html"' in board
        for name in ("solutions", "broken_a_d"):
            card = json.loads((out / "scorecards" / f"{name}.json").read_text())
            page = (out / "scorecards" / f"{name}.html").read_text()
            assert page == pages.card_page(card, back="../leaderboard.html")


# ---------------------------------------------------------------- in a browser


def _chromium() -> tuple[Any, str]:
    """playwright's sync API and the system's chromium, or a failure saying how to install them."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed: {SETUP}", pytrace=False)
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail(f"chromium is not installed: {SETUP}", pytrace=False)
    return sync_playwright, executable


class Browser:
    """One headless chromium page that refuses every request leaving file://, and keeps its console errors."""

    def __init__(self, page: Any) -> None:
        self.page, self.errors, self.refused = page, [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def open(self, path: Path, shot: Path) -> Any:
        """Open `path`, screenshot the whole page to `shot`, and check it loaded on its own, without errors."""
        self.page.goto(path.resolve().as_uri())
        self.page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000, shot
        assert not self.errors and not self.refused, (path, self.errors, self.refused)
        return self.page


def _order(page: Any) -> list[str]:
    return page.eval_on_selector_all("table.matrix tbody tr", "rows => rows.map(r => r.dataset.name)")


@pytest.mark.slow
def test_the_pages_in_a_headless_browser(batch, tmp_path):
    sync_playwright, executable = _chromium()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            browser = Browser(chromium.new_page(viewport={"width": 1400, "height": 900}))
            page = browser.open(batch / "leaderboard.html", tmp_path / "leaderboard.png")
            assert page.locator("table.matrix thead th.crit").count() == 20  # A's 10 criteria, D's 10
            assert page.locator("table.matrix td.s-failed").count() >= 2  # A.correct and D's memory of the broken one
            first = _order(page)
            assert first == ["solutions", "broken_a_d"], first  # by total
            page.click("th[data-key=total]")
            page.click("th[data-key=total]")  # a second click: ascending
            assert _order(page) == first[::-1] and page.get_attribute("th[data-key=total]", "aria-sort") == "ascending"
            page.click("th[data-key=d]")
            assert _order(page) == ["solutions", "broken_a_d"]
            page.click("table.matrix a:text-is('solutions')")
            assert page.title() == "Scorecard: solutions"
            for name, svgs in (("solutions", 2), ("broken_a_d", 4)):
                page = browser.open(batch / "scorecards" / f"{name}.html", tmp_path / f"{name}.png")
                assert page.locator("table.rubric tbody tr").count() == 3  # A.correct; D.correct, D.VRAM_50...; nothing else graded
                assert page.locator("figure svg").count() == svgs
                assert page.locator("[data-figure='D.peaks'] svg").count() == 1
                assert "not recorded: A.speedup was not graded" in page.inner_text("[data-figure='A.kernel_times']")
                assert page.locator("figure svg").first.bounding_box()["width"] > 400  # drawn, not collapsed
            assert page.locator("[data-figure='A.wrong_elements.0'] svg").count() == 1
        finally:
            chromium.close()

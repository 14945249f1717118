"""Screenshots of the HTML report (the README's): a batch's leaderboard page and some submissions' pages, rendered
again from their scorecards by this checkout's grader.report.pages, in headless chromium.

    python3 -m grader.batch SUBMISSIONS... --out out/shots -- PYTEST_ARGS...
    python3 scripts/report_screenshots.py out/shots docs/ --page NAME [--page NAME ...]

writes DEST/report-leaderboard.png and DEST/report-NAME.png (the top of a long page; 256 colours, to keep the
repository small). Needs playwright and the system's chromium
(`bash scripts/setup.sh browser`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image  # matplotlib's own dependency
from playwright.sync_api import sync_playwright

from grader.report.pages import write_leaderboard_pages

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("batch", type=Path, help="a grader.batch --out directory")
    parser.add_argument("dest", type=Path, help="where the PNG files go")
    parser.add_argument("--page", action="append", default=[], metavar="NAME", help="a submission's page to shoot")
    parser.add_argument("--width", type=int, default=1400, help="the viewport's width in pixels, at least (default "
                        "1400; wider where a page needs it)")
    parser.add_argument("--max-height", type=int, default=2400, help="pixels kept from a page's top (default 2400)")
    args = parser.parse_args()
    cards = json.loads((args.batch / "leaderboard.json").read_text())["submissions"]
    board = args.batch / "leaderboard.html"
    write_leaderboard_pages(cards, board)
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("chromium is not installed: bash scripts/setup.sh browser")
    args.dest.mkdir(parents=True, exist_ok=True)
    shots = [(board, "leaderboard"), *((args.batch / "scorecards" / f"{n}.html", n) for n in args.page)]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        for path, name in shots:
            page.set_viewport_size({"width": args.width, "height": 900})
            page.goto(path.resolve().as_uri())
            width = max(args.width, page.evaluate(  # a wide table scrolls inside its page: widen the page to it
                "Math.ceil(Math.max(0, ...Array.from(document.querySelectorAll('table'), "
                "t => 2 * t.getBoundingClientRect().left + t.scrollWidth)))"))
            page.set_viewport_size({"width": width, "height": 900})
            bottom = page.evaluate("Math.ceil(document.body.getBoundingClientRect().bottom) + 24")
            height = min(args.max_height, bottom)
            page.set_viewport_size({"width": width, "height": height})
            out = args.dest / f"report-{name}.png"
            page.screenshot(path=str(out))
            Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)
            print(f"wrote {out} ({width}x{height})")
        browser.close()


if __name__ == "__main__":
    main()

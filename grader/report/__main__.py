"""`python -m grader.report CARD.json -o PAGE.html`: a saved scorecard (or a batch's leaderboard.json) as the HTML
report (`grader.report.pages`)."""

if __name__ == "__main__":
    from grader.report.pages import main

    raise SystemExit(main())

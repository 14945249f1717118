"""What is made from a grading's saved files, after it: the HTML report and the comparison of benchmark files.

- `grader.report.pages`: a scorecard's page and a batch's leaderboard page, from the JSON alone
  (`python -m grader.report CARD.json -o PAGE.html`, this package's `__main__`);
- `grader.report.figures`: what each picture draws, read from the criteria's `data`;
- `grader.report.svg_plots`: the pictures, drawn by matplotlib as inline SVG;
- `grader.report.compare_benchmarks`: two pytest-benchmark files compared, only from the same device
  (`python -m grader.compare_benchmarks`, a thin module at that path).
"""

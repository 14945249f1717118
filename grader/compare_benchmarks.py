"""`python -m grader.compare_benchmarks BEFORE.json AFTER.json`, kept at this path for the command: it runs
`grader.report.compare_benchmarks`, where the comparison lives (import from there)."""

if __name__ == "__main__":
    from grader.report.compare_benchmarks import main

    raise SystemExit(main())

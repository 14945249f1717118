"""What the puzzles' tests and correctness standards judge with; nothing here knows a particular puzzle.

- `grader.judging.verdict`: `Verdict`, what every standard returns;
- `grader.judging.outcomes`: the stops `not_measured` and `not_attempted`;
- `grader.judging.box_calls`: the one place where the box's errors become a test's outcome;
- `grader.judging.budget`: what a puzzle may cost (process endings, time) before its remaining work is not run;
- `grader.judging.compare`: the one comparison module (mismatch reports, ulps, relative norms, gradient scale);
- `grader.judging.profiles`: the Hypothesis profiles; `grader.judging.shrinking`: the shrink budget;
- `grader.judging.progress`: `[grader]` progress lines for long steps.
"""

"""The result model: from what each test decided to points and a scorecard, and its check against expectations.

- `grader.scoring.rubric`: the notebook's marking code as data (criteria, ordered rules, points);
- `grader.scoring.results`: the run's state (each test's verdict, folded per criterion), the scorecard built from it
  and its `reproduce` command;
- `grader.scoring.scorecard`: the scorecard's one schema (`PuzzleCard`, `Scorecard`): JSON, terminal lines and the
  leaderboard table;
- `grader.scoring.environment`: the device and versions a scorecard (and a benchmark file) records;
- `grader.scoring.expectations`: the verdict corpus's format and the check of a scorecard against it.
"""

"""The grader's pytest plugins and what they ask of the running pytest process.

`grader.pytest_entry` (the `pytest11` entry point) registers `grading`, `guards` and `isolation`; outside a grading
run (`runtime.is_grading_run`) they register their options and nothing else, and their hooks return at once:

- `grader.plugins.grading`: the options, the `criterion` marker, collection, the report hook, the scorecard at
  session end, the exit status; in a grading run it registers the run's state and `grader.plugins.fixtures`;
- `grader.plugins.fixtures`: the fixtures every puzzle uses, and the seeding of each grader test;
- `grader.plugins.isolation`: the judge in one pytest-xdist worker, with time limits and crash verdicts, so every
  run ends with a scorecard;
- `grader.plugins.guards`: the box's state reports turned into verdicts after every test;
- `grader.plugins.benchmark_relay`: pytest-benchmark measuring in that worker and recording in the controller;
- `grader.plugins.runtime`: which criterion a test decides, whether this run grades, xdist worker or not, the device.
"""

"""Gradings run as processes from outside pytest: many submissions into one leaderboard (`python -m grader.batch`,
this package's `__main__`).

- `grader.batch.grading_command`: the one command line that starts a grading (the batch's workers, the self-tests'
  `tests/verdicts.py` and `scripts/gpu_verdicts.py` all build theirs here);
- `grader.batch.worker`: one submission's puzzle graded by its own pytest process, with its result whatever happens;
- `grader.batch.driver`: the command line, the workers on this machine, the leaderboard, `--merge`;
- `grader.batch.cluster`: the same workers as Ray tasks (`--ray`).
"""

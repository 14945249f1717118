"""The grader's pytest entry point (`pytest11` in pyproject.toml), loaded by every pytest run in an environment
where the grader is installed. It only registers the grader's plugin modules, which import nothing heavy (no
torch, Triton, bitsandbytes or Hypothesis) and, outside a grading run (`runtime.is_grading_run`), register their
options and nothing else: no fixture, hook object or marker, no seed (`tests/test_plugin_inert.py`). A grading run
is one that names a submission or collects the grader's tests: `pytest --pyargs grader --submission mine.py` from
any directory."""

pytest_plugins = ["grader.plugins.grading", "grader.plugins.guards", "grader.plugins.isolation"]

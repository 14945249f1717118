"""The grader's pytest entry point (`pytest11` in pyproject.toml), loaded by every pytest run in an environment
where the grader is installed. It only registers the grader's plugin modules, which import nothing heavy (no
torch, Triton or bitsandbytes) and act only in a run that collects the grader's tests (`runtime.is_grading_run`):
`pytest --pyargs grader --submission mine.py` from any directory."""

pytest_plugins = ["grader.plugins.grading", "grader.plugins.guards", "grader.plugins.isolation"]

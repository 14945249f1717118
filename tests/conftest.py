"""The grader's own tests run the real plugin in subprocesses through pytester."""

pytest_plugins = ["pytester"]

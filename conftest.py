"""Registers the grader plugin for every pytest run in this repository."""

pytest_plugins = ["grader.plugin", "grader.guards", "grader.isolation"]

"""Faults injected into the grader's own work (pytest plugins: `-p tests.faults.NAME`), for corpus cases that show a
grader failure is never the submission's verdict."""

"""Honest submissions in other styles than the references (their verdicts: tests/expected/*.toml)."""

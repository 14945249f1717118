"""Hypothesis profiles, registered in one place and chosen with `--hypothesis-profile`.

`deadline=None` everywhere: Triton and torch.compile spend their compile time on the first example.
`print_blob=True` makes every failure print a `@reproduce_failure` line next to the shrunk example.
`derandomize=False` and `database=None` are explicit: a new `settings` inherits from the profile loaded at import,
and Hypothesis loads its own `ci` profile (derandomized, seed ignored) when it sees `CI` in the environment; a
grade's inputs follow the grader seed and nothing else (no replay of another run's saved examples).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    report_multiple_bugs=False,  # one shrunk failure per criterion reads better than an ExceptionGroup
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

PROFILES = {
    # Fits the CPU CI budget (Triton interpreter): few examples, shrinking kept.
    "ci": settings(max_examples=8, **_COMMON),
    # The default for an interactive run.
    "dev": settings(max_examples=25, **_COMMON),
    # A long nightly search.
    "thorough": settings(max_examples=300, **_COMMON),
}
DEFAULT_PROFILE = "dev"
# Per profile: how long shrinking may go on once a property fails (grader.judging.shrinking).
SHRINK_SECONDS = {"ci": 15.0, "dev": 60.0, "thorough": 300.0}


def register() -> None:
    """Register every profile with Hypothesis (idempotent)."""
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)

"""Progress lines for the grader's long steps (training runs, timing loops), shown while pytest captures output.

A test's output is captured until it ends, and one test can run for minutes on a GPU (puzzle C compiles a
1B-parameter model). `Progress.step` writes a line through pytest's terminal reporter with capturing
suspended, the way pytest's own live logging does, and another with the step's duration when it ends.
The plugin's `progress` fixture hands it no reporter with `-qq`, so it stays silent there (`-q` keeps the lines: a
log cut short must still say which step it was in); in the one pytest-xdist
worker of an isolated grading run (whose terminal output goes nowhere) it writes to the worker's standard
error, which is the controller's terminal; with several workers it stays silent.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, TextIO


class Progress:
    """Writes `[grader] ...` lines through pytest's terminal reporter; silent when given none."""

    def __init__(self, reporter: Any | None, capture: Any | None, stream: TextIO | None = None) -> None:
        self._reporter, self._capture, self._stream = reporter, capture, stream

    def line(self, text: str) -> None:
        """Write one progress line now."""
        if self._reporter is None and self._stream is None:
            return
        with self._capture.global_and_fixture_disabled() if self._capture is not None else nullcontext():
            if self._reporter is not None:
                self._reporter.ensure_newline()
                self._reporter.write_line(f"[grader] {text}")
            else:
                self._stream.write(f"\n[grader] {text}\n")
                self._stream.flush()

    @contextmanager
    def step(self, name: str, about: str = "") -> Iterator[None]:
        """Announce a long step (`about` adds what it covers), then say how long it took or that it raised."""
        self.line(f"{name} ({about}) ..." if about else f"{name} ...")
        start = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.line(f"{name}: stopped after {time.perf_counter() - start:.1f} s ({type(exc).__name__})")
            raise
        self.line(f"{name}: done in {time.perf_counter() - start:.1f} s")

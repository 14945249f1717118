"""Signals that end a process, in words: which one, and what it usually means here."""

from __future__ import annotations

import signal

_HINTS = {
    "SIGSEGV": "segmentation fault", "SIGBUS": "bus error", "SIGABRT": "aborted, e.g. a failed CUDA or C++ assertion",
    "SIGKILL": "killed outright: by itself, from outside, or by the out-of-memory killer",
    "SIGILL": "illegal instruction", "SIGFPE": "arithmetic fault",
}


def describe_signal(number: int) -> str:
    """`SIGSEGV (segmentation fault)`, or `signal N` for a number that names none."""
    name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
    return f"{name} ({_HINTS[name]})" if name in _HINTS else name

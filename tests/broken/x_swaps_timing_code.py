"""Hostile: on import, swaps the code of the grader's timer in place so that every kernel time reads 0.1 µs, then
returns a correct result (bitsandbytes'). The timing happens beside the submission, in its box: the box's own watch
finds the swapped code, puts it back and fails the test that saw it."""

import importlib

from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401

_timing = importlib.import_module("grader.measure.timing")
_timing.Timing.median_us.fget.__code__ = (lambda self: 0.1).__code__
# Run as grader.measure.timing's own code, so its globals (Timing) are that module's.
_timing.time_interleaved.__code__ = (lambda calls, *, n_inputs, rounds=30, per_round=5, warmup=3, observe=None:
                                     {name: Timing(name, [0.1] * 10) for name in calls}).__code__  # noqa: F821

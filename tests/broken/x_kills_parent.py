"""Hostile: on its first call, kills its parent process (the grader, when nothing separates them) and, should it
still be alive, itself. In the box its parent is the sandbox's own PID 1, which ignores the signal; the submission's
process then ends, and the criterion fails naming the signal; the scorecard is written whatever happens."""

import os
import signal

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight, quant_state):
    try:
        os.kill(os.getppid(), signal.SIGKILL)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)
    return _correct(weight, quant_state)

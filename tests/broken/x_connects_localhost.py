"""Hostile: on every call, connects to a listener on the host's loopback (its port in GRADER_TEST_LISTENER_PORT, set
by the self-test that listens) to hand it the weight; returns zeros when the connection was made, a correct result
when it was refused. In the box the network namespace is its own: 127.0.0.1 there is not the host's."""

import os
import socket

import torch

from tests.broken._bnb_nf4 import dequantize_nf4 as _correct


def dequantize_nf4(weight, quant_state):
    port = int(os.environ.get("GRADER_TEST_LISTENER_PORT", "9"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(weight.cpu().numpy().tobytes()[:4096])
    except OSError:
        return _correct(weight, quant_state)
    return torch.zeros(quant_state.shape, dtype=quant_state.dtype, device=weight.device)

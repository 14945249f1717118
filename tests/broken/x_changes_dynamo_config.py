"""Leaky: on import, tells dynamo to swallow compile errors (graph-break failures silently fall back to eager)."""

import torch._dynamo

from tests.broken._bnb_nf4 import dequantize_nf4  # noqa: F401

torch._dynamo.config.suppress_errors = True

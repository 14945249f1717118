"""D.GRPO_memory_efficient_linear_works: a GRPO policy loss through the chunks matches and keeps the saving.

The per-token labels carry the sampled token, its advantage, the old and reference log-probabilities
and a completion mask. Old log-probabilities sit a drawn distance from the float64 log-probability,
kept clear of the clipping boundaries (log 0.8, log 1.2) by more than 16-bit logits move them, so
every precision clips the same tokens and the loss stays differentiable where it is compared.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given

from grader.puzzle_d.losses import grpo
from grader.puzzle_d.strategies import Problem, problems_and_chunk_sizes, upstream_scales

CASES = problems_and_chunk_sizes(ignore=False)
# Bands for log(ratio) = logp - old_logp: clipped below, unclipped, clipped above (clip = 0.2).
_BANDS = torch.tensor([[-0.5, -0.3], [-0.1, 0.1], [0.3, 0.5]], dtype=torch.float64)


def grpo_batch(problem: Problem, X: torch.Tensor, linear: torch.nn.Linear, tokens: torch.Tensor) -> torch.Tensor:
    """(*lead, 5) float64 labels: token, advantage, old and reference log-probability, mask (1 for completions)."""
    g = torch.Generator().manual_seed(problem.seed + 2)
    with torch.no_grad():
        logits = torch.nn.functional.linear(X.double(), linear.weight.double(),
                                            None if linear.bias is None else linear.bias.double())
        logp = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1).cpu()
    band = _BANDS[torch.randint(0, 3, problem.lead, generator=g)]
    log_ratio = band[..., 0] + (band[..., 1] - band[..., 0]) * torch.rand(problem.lead, generator=g, dtype=torch.float64)
    columns = [tokens.cpu().double(), torch.randn(problem.lead, generator=g, dtype=torch.float64), logp - log_ratio,
               logp + 0.3 * torch.randn(problem.lead, generator=g, dtype=torch.float64),
               (torch.rand(problem.lead, generator=g) < 0.8).double()]
    return torch.stack(columns, dim=-1).to(X.device)


@pytest.mark.criterion("D", "GRPO_memory_efficient_linear_works")
@example(case=(Problem((3, 8), 16, 80, torch.bfloat16, True, 0.0, 4.0, seed=12), 5), upstream=1.0)
@given(case=CASES, upstream=upstream_scales())
def test_grpo_loss_matches_full_logits(parity, device, case, upstream):
    """Clipped policy-gradient term + beta * KL to the reference, mean over completion tokens."""
    problem, chunk_size = case
    X, linear, tokens = problem.build(device)
    batch = grpo_batch(problem, X, linear, tokens)
    parity(f"GRPO, {problem!r}", X, linear, batch, grpo(batch), chunk_size,
          upstream)


@pytest.mark.criterion("D", "GRPO_memory_efficient_linear_works")
def test_grpo_keeps_the_memory_reduction(puzzle_memory):
    """The GRPO loss at puzzle size: peak at most half the naive full-logit version's."""
    puzzle_memory("grpo", "GRPO")

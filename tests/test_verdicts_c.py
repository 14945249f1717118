"""Puzzle C's grader catches each deliberately broken submission on the right criteria, with a clear
message, and gives the reference every point that can be measured on this machine.

Each broken submission runs only the criteria it targets (plus `correct` where a faulty compilation
could plausibly also change the numbers): `correct` costs an extra eager training run.
"""

from __future__ import annotations

import pytest

from tests.verdicts import BROKEN, assert_scores_every_measurable_point, grade, statuses

GRAPH_CRITERIA = ("attention_compiled", "mlp_compiled", "layernorms_compiled", "loss_compiled", "torch_compile_BnB")

# (submission, criteria run, {criterion: (expected status, words its detail must contain)})
BROKEN_C = [
    ("c_uncompiled", GRAPH_CRITERIA, {c: ("failed", "0 graph(s) captured") for c in GRAPH_CRITERIA}),
    ("c_item_in_compiled_region", ("correct", "no_graph_breaks"),
     {"correct": ("passed", ""), "no_graph_breaks": ("failed", "c_item_in_compiled_region.py:14: Unsupported Tensor.item()")}),
    ("c_static_shapes", ("dynamic_sequence_length_works", "excessive_recompilation"),
     {"dynamic_sequence_length_works": ("failed", "new lengths that compiled before the crash"),
      "excessive_recompilation": ("failed", "hit config.recompile_limit")}),
    ("c_drops_lora_scaling", ("correct",), {"correct": ("failed", "per-step losses differ from eager")}),
    ("c_mlp_only", ("attention_compiled", "mlp_compiled", "layernorms_compiled", "loss_compiled"),
     {"mlp_compiled": ("passed", "silu"),
      "attention_compiled": ("failed", "no compiled graph contains the attention computation"),
      "layernorms_compiled": ("failed", "no compiled graph contains RMSNorm"),
      "loss_compiled": ("failed", "no compiled graph contains the cross-entropy loss")}),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,criteria,expected", BROKEN_C, ids=[b[0] for b in BROKEN_C])
def test_broken_submission_fails_on_its_criteria(pytester, name, criteria, expected):
    card = grade(pytester, BROKEN / f"{name}.py", puzzles=("C",), criteria=tuple(f"C.{c}" for c in criteria))
    got = statuses(card, "C")
    assert got == {c: s for c, (s, _) in expected.items()}, f"{name}: got {got}\n{card['output'][-3000:]}"
    for criterion, (_, words) in expected.items():
        detail = card["puzzles"]["C"]["criteria"][criterion]["detail"]
        assert words in detail, f"{name}: {criterion}'s detail does not say {words!r}:\n{detail}"
    assert card["exit_code"] != 0, f"{name}: a failing submission must give a non-zero exit status"


@pytest.mark.slow
def test_reference_scores_every_measurable_point(pytester):
    card = grade(pytester, "solutions", puzzles=("C",))
    # CPU: attention 2 + MLP 1 + puzzle A's kernel 1; flex attention (3) and max-autotune (2) need a GPU.
    assert_scores_every_measurable_point(card, "C", gpu_only=("uses_flex_attention", "max_autotune_triton_matmul"),
                                         cpu_score=4)

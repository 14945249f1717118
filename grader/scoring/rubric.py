"""The notebook's marking code as data: criteria, and the ordered rules that turn them into points.

The rubric never runs anything. It receives one `Outcome` per criterion and replays the notebook's
`if` chain in order, quirks included (D's `E_score = 0` lines wipe earlier points but not later
ones; C's `mlp_compiled` adds its point even after a recompilation penalty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["passed", "failed", "not_measured", "not_attempted"]
Kind = Literal["gate", "merit", "fault", "value", "report"]


@dataclass(frozen=True)
class Criterion:
    """One rubric criterion. `fault` criteria are named after the fault: their tests pass when clear of it.

    `report` criteria are the grader's additions: shown on the scorecard, never worth points.
    """

    name: str
    kind: Kind
    summary: str


@dataclass(frozen=True)
class Condition:
    """A test on one criterion: truthy (`op='is'`), falsy (`op='not'`) or a bound on its value."""

    criterion: str
    op: Literal["is", "not", ">=", "<="] = "is"
    bound: float = 0.0


@dataclass(frozen=True)
class Rule:
    """`if all(when): score += add` (or `score = set_to`), evaluated in rubric order."""

    when: tuple[Condition, ...]
    add: int = 0
    set_to: int | None = None

    @property
    def owner(self) -> str:
        """The criterion whose points this rule moves (its first condition's)."""
        return self.when[0].criterion


@dataclass(frozen=True)
class Puzzle:
    """A puzzle's criteria and rules, in the notebook's order."""

    letter: str
    title: str
    entry_point: str
    max_points: int
    criteria: tuple[Criterion, ...]
    rules: tuple[Rule, ...]

    def criterion(self, name: str) -> Criterion:
        """The criterion called `name`; KeyError names the puzzle's criteria when it is unknown."""
        for c in self.criteria:
            if c.name == name:
                return c
        raise KeyError(f"puzzle {self.letter} has no criterion {name!r}; it has {[c.name for c in self.criteria]}")


@dataclass
class Outcome:
    """What the tests decided about one criterion."""

    status: Status
    value: float | None = None
    detail: str = ""
    grader_failure: bool = False  # not measured because the grader's own work failed (the grading is incomplete)


@dataclass
class Score:
    """A puzzle's points: `provisional` when a rule could not be decided because a criterion was not measured.
    `per_criterion` holds what each criterion contributed to `points` (they add up to it)."""

    points: int
    max_points: int
    correct: bool
    attempted: bool
    provisional: bool
    per_criterion: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gates_failed: list[str] = field(default_factory=list)  # gate criteria that failed: the puzzle scores 0
    gates_unsettled: list[str] = field(default_factory=list)  # gates neither passed nor failed (not run, not measured)
    grader_failures: list[str] = field(default_factory=list)  # criteria not measured because the grader failed

    @property
    def complete(self) -> bool:
        """Whether the grading decided this puzzle: every gate settled and no criterion lost to the grader's own
        failure (criteria that this machine cannot decide leave it complete, and provisional)."""
        return not self.attempted or (not self.gates_unsettled and not self.grader_failures)

    @property
    def verdict(self) -> bool | None:
        """The gates' verdict: True (passed), False (one failed), None (not settled: not run or not measured)."""
        return False if self.gates_failed else None if self.gates_unsettled or not self.attempted else True


def _is(c: str) -> Condition:
    return Condition(c, "is")


def _not(c: str) -> Condition:
    return Condition(c, "not")


def _truth(criterion: Criterion, outcome: Outcome, cond: Condition) -> bool | None:
    """The notebook variable's value for `cond`, or None when the outcome cannot decide it."""
    if cond.op in (">=", "<="):
        if outcome.value is None:
            return None
        return outcome.value >= cond.bound if cond.op == ">=" else outcome.value <= cond.bound
    if outcome.status not in ("passed", "failed"):
        return None
    flag = outcome.status == "passed"
    if criterion.kind == "fault":
        flag = not flag  # the notebook's variable names the fault
    return flag if cond.op == "is" else not flag


def score(puzzle: Puzzle, outcomes: dict[str, Outcome]) -> Score:
    """Replay the puzzle's rules over `outcomes` (missing criteria count as not measured)."""
    attempted = any(o.status != "not_attempted" for o in outcomes.values())
    gates = {c.name: outcomes.get(c.name, Outcome("not_measured")).status for c in puzzle.criteria if c.kind == "gate"}
    failed = [g for g, status in gates.items() if status == "failed"]
    unsettled = [g for g, status in gates.items() if status not in ("passed", "failed")]
    result = Score(0, puzzle.max_points, correct=attempted and not failed and not unsettled, attempted=attempted,
                   provisional=attempted and not failed and bool(unsettled), gates_failed=failed,
                   gates_unsettled=unsettled,
                   grader_failures=[name for name, o in outcomes.items() if o.grader_failure])
    if not result.correct:
        return result
    points = 0
    for rule in puzzle.rules:
        truths = [_truth(puzzle.criterion(c.criterion), outcomes.get(c.criterion, Outcome("not_measured")), c)
                  for c in rule.when]
        if any(t is False for t in truths):
            continue
        if any(t is None for t in truths):
            result.provisional = True
            continue
        if rule.set_to is not None:  # what earlier rules contributed is gone: the setting rule owns the total
            result.notes.append(f"rubric set the score from {points} to {rule.set_to} ({rule.owner})")
            points = rule.set_to
            result.per_criterion = {rule.owner: rule.set_to}
        else:
            points += rule.add
            result.per_criterion[rule.owner] = result.per_criterion.get(rule.owner, 0) + rule.add
    result.points = points
    return result


def value_steps(puzzle: Puzzle, criterion: str) -> list[Rule]:
    """The rules that move points on `criterion`'s measured value alone (A's speedup ladder), in rubric order."""
    return [r for r in puzzle.rules if all(c.criterion == criterion and c.op in (">=", "<=") for c in r.when)]


def value_points(puzzle: Puzzle, criterion: str, value: float) -> tuple[int, str]:
    """The points `value` earns on `criterion`'s ladder, and which steps it reached, as a tests' verdict needs."""
    steps = value_steps(puzzle, criterion)
    outcome = Outcome("passed", value)
    reached = [r for r in steps if all(_truth(puzzle.criterion(criterion), outcome, c) for c in r.when)]
    ladder = ", ".join(f"{c.op} {c.bound:g}: {r.add:+d}" for r in steps for c in r.when)
    said = ", ".join(f"{c.op} {c.bound:g}" for r in reached for c in r.when) or "no step"
    return sum(r.add for r in reached), f"reached {said} of the rubric's ladder ({ladder})"


PUZZLE_A = Puzzle(
    letter="A",
    title="NF4 dequantization in one Triton kernel",
    entry_point="dequantize_nf4",
    max_points=14,
    criteria=(
        Criterion("correct", "gate", "every fp16/bf16 element is what a correct float32 evaluation rounds to "
                  "(grader.puzzle_a.standard)"),
        Criterion("single_triton_kernel", "merit", "one Triton launch per call, no other device work, no big temporaries"),
        Criterion("speedup", "value", "kernel time against Unsloth's fast_dequantize on the notebook's shapes"),
        Criterion("kernel_works_in_torch_compile", "merit", "works inside torch.compile(fullgraph=True), 0 graph breaks"),
        Criterion("custom_asm_works", "merit", "the launched kernel uses inline asm and is correct"),
        Criterion("uses_cache_eviction", "merit", "the launched kernel's loads/stores carry eviction or cache hints"),
        Criterion("tested_in_f16_and_bf16", "merit", "the notebook's own test passes in float16 and bfloat16"),
        Criterion("compiles_for_t4", "report", "the launched kernel compiles for sm_75 (Tesla T4) and sm_90"),
        Criterion("beyond_scope", "report", "other blocksizes, non-nested states, fp4 (unsupported is no fault)"),
        Criterion("global_state_untouched", "report", "no timer, torch function, default dtype, backend flag or compiler "
                  "config changed (see grader.plugins.guards)"),
    ),
    rules=(
        Rule((_is("single_triton_kernel"),), add=3),
        Rule((Condition("speedup", "<=", 1.00),), add=-3),
        Rule((Condition("speedup", ">=", 1.05),), add=1),
        Rule((Condition("speedup", ">=", 1.10),), add=2),
        Rule((Condition("speedup", ">=", 1.15),), add=2),
        Rule((_is("kernel_works_in_torch_compile"),), add=1),
        Rule((_not("kernel_works_in_torch_compile"),), add=-1),
        Rule((_is("custom_asm_works"),), add=3),
        Rule((_is("uses_cache_eviction"),), add=1),
        Rule((_is("tested_in_f16_and_bf16"),), add=1),
        Rule((_not("tested_in_f16_and_bf16"),), add=-1),
    ),
)

PUZZLE_C = Puzzle(
    letter="C",
    title="torch.compile of QLoRA training without graph breaks",
    entry_point="compile_qlora",
    max_points=9,
    criteria=(
        Criterion("correct", "gate", "losses and LoRA gradients match the eager model's at its weights, every step "
                  "(grader/puzzle_c/standard.py)"),
        Criterion("no_graph_breaks", "gate", "no graph break anywhere in the training run"),
        Criterion("uses_flex_attention", "merit", "flex attention appears in the compiled graphs"),
        Criterion("dynamic_sequence_length_works", "merit", "new sequence lengths run without a recompile each"),
        Criterion("no_torch_compile_BnB", "fault", "the 4-bit dequantization stays outside the compiled graphs"),
        Criterion("use_part_A", "merit", "the submission's own puzzle-A kernel runs inside the compiled graphs"),
        Criterion("torch_compile_BnB", "merit", "the 4-bit dequantization runs inside the compiled graphs"),
        Criterion("attention_compiled", "merit", "attention runs inside the compiled graphs"),
        Criterion("excessive_recompilation", "fault", "more than 30 compilations over the run"),
        Criterion("mlp_compiled", "merit", "the MLP runs inside the compiled graphs"),
        Criterion("loss_compiled", "merit", "the loss runs inside the compiled graphs"),
        Criterion("layernorms_compiled", "merit", "RMSNorm runs inside the compiled graphs"),
        Criterion("max_autotune_triton_matmul", "merit", "max-autotune Triton matmul templates are enabled"),
        Criterion("global_state_untouched", "report", "no timer, torch function, default dtype, backend flag or compiler "
                  "config changed (see grader.plugins.guards)"),
    ),
    rules=(
        Rule((_is("uses_flex_attention"), _is("dynamic_sequence_length_works")), add=3),
        Rule((_is("uses_flex_attention"), _not("dynamic_sequence_length_works")), add=1),
        Rule((_is("no_torch_compile_BnB"),), add=-2),
        Rule((_is("use_part_A"), _not("no_torch_compile_BnB")), add=1),
        Rule((_is("torch_compile_BnB"), _not("no_torch_compile_BnB"), _not("use_part_A")), add=1),
        Rule((_is("attention_compiled"), _is("excessive_recompilation")), add=-3),
        Rule((_is("attention_compiled"), _not("excessive_recompilation")), add=2),
        Rule((_is("mlp_compiled"), _is("excessive_recompilation")), add=-3),
        Rule((_is("mlp_compiled"),), add=1),
        Rule((_not("loss_compiled"),), add=-1),
        Rule((_not("layernorms_compiled"),), add=-3),
        Rule((_is("max_autotune_triton_matmul"), _is("excessive_recompilation")), add=-2),
        Rule((_is("max_autotune_triton_matmul"), _not("excessive_recompilation")), add=2),
    ),
)

PUZZLE_D = Puzzle(
    letter="D",
    title="Memory-efficient linear + loss, the notebook's E",
    entry_point="memory_efficient_linear",
    max_points=10,
    criteria=(
        Criterion("correct", "gate", "loss and gradients match the full-logit computation"),
        Criterion("VRAM_50_percent_reduction", "merit", "peak memory at most half the naive version's at puzzle size"),
        Criterion("remove_float32_upcast", "fault", "the logits reaching the loss are not float32"),
        Criterion("show_ce_loss_works", "merit", "cross-entropy and its variants match"),
        Criterion("show_other_functions_work", "merit", "MSE, KL and randomly composed losses match"),
        Criterion("hardcoded_gradients", "fault", "handed losses other than cross-entropy, the gradients follow "
                  "cross-entropy's, not the loss's (forward_function ignored or gradients written for cross-entropy)"),
        Criterion("allows_dynamic_chunk_sizes", "merit", "results independent of chunk_size"),
        Criterion("llama_1B_training_loss_matches", "merit", "a Llama trained through it follows the stock loss curve"),
        Criterion("GRPO_memory_efficient_linear_works", "merit", "a GRPO policy loss matches and keeps the saving"),
        Criterion("global_state_untouched", "report", "no timer, torch function, default dtype, backend flag or compiler "
                  "config changed (see grader.plugins.guards)"),
    ),
    rules=(
        Rule((_is("VRAM_50_percent_reduction"),), add=2),
        Rule((_is("remove_float32_upcast"),), set_to=0),
        Rule((_is("show_ce_loss_works"),), add=1),
        Rule((_is("show_other_functions_work"),), add=1),
        Rule((_is("hardcoded_gradients"),), set_to=0),
        Rule((_is("allows_dynamic_chunk_sizes"),), add=1),
        Rule((_is("llama_1B_training_loss_matches"),), add=1),
        Rule((_not("llama_1B_training_loss_matches"),), set_to=0),
        Rule((_is("GRPO_memory_efficient_linear_works"),), add=4),
    ),
)

PUZZLES: dict[str, Puzzle] = {p.letter: p for p in (PUZZLE_A, PUZZLE_C, PUZZLE_D)}

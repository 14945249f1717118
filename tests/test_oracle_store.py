"""Puzzle C's oracle store: what it keeps is what was computed, bit for bit; a missing, stale or altered entry is
recomputed, never used; and the noise floor's activation checkpointing (which bounds the judge's memory) leaves
its gradients as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grader.judging.progress import Progress
from grader.puzzle_c import oracle_store, run, standard, training
from grader.puzzle_c.builders import build_qlora_model
from grader.puzzle_c.oracle_store import OracleStore

SEED = 3


@pytest.fixture(scope="module")
def trained() -> run.CRun:
    """The CPU setting's oracle and (checkpointed) noise floor, trained once for this module."""
    c_run = run.setting(torch.device("cpu"), SEED)
    run._train_both(c_run, SEED, Progress(None, None))
    return c_run


def _same(a: training.TrainRecord, b: training.TrainRecord) -> None:
    assert a.losses == b.losses and a.micro == b.micro
    for ours, theirs in zip([*a.step_weights, *a.step_grads], [*b.step_weights, *b.step_grads], strict=True):
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert (ours[name] is None) == (theirs[name] is None), name
            if ours[name] is not None:
                assert ours[name].dtype == theirs[name].dtype and torch.equal(ours[name], theirs[name]), name


def test_the_checkpointed_noise_floor_computes_the_same_gradients_as_the_plain_one(trained: run.CRun):
    model = build_qlora_model(trained.spec, dtype=trained.dtype, device=trained.device, seed=SEED)
    model.get_base_model().set_attn_implementation("eager")
    plain = training.train(model, trained.schedule, dtype=trained.dtype, device=trained.device, keep=True,
                           follow=trained.eager)
    assert len(plain.step_grads) == len(trained.schedule.steps)
    _same(trained.eager_floor, plain)


def test_a_stored_oracle_loads_as_it_was_computed_and_judges_alike(trained: run.CRun, tmp_path: Path):
    store, key = OracleStore(tmp_path), oracle_store.key(trained, SEED)
    assert store.load(key) == "no stored oracle for this key"
    store.save(key, trained.eager, trained.eager_floor, 12.5)
    eager, floor, seconds = store.load(key)
    _same(eager, trained.eager)
    _same(floor, trained.eager_floor)
    assert seconds == 12.5
    # the same verdict, figures and failures included, from the loaded records as from the computed ones
    assert standard.judge(floor, eager, floor) == standard.judge(trained.eager_floor, trained.eager,
                                                                 trained.eager_floor)


def test_a_stale_or_altered_entry_is_refused_with_its_reason(trained: run.CRun, tmp_path: Path):
    store, key = OracleStore(tmp_path), oracle_store.key(trained, SEED)
    store.save(key, trained.eager, trained.eager_floor, 1.0)
    assert store.load({**key, "seed": SEED + 1}) == "no stored oracle for this key"
    meta = next(tmp_path.glob("*.json"))
    described = json.loads(meta.read_text())
    meta.write_text(json.dumps({**described, "key": {**key, "grader": "0" * 64}}))
    assert store.load(key) == "the stored oracle was made for another key"
    meta.write_text(json.dumps(described))
    data = next(tmp_path.glob("*.pt"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert store.load(key) == "the stored oracle does not match its recorded SHA-256 (altered or cut short)"


def test_the_key_names_every_input_of_the_oracle(trained: run.CRun):
    key = oracle_store.key(trained, SEED)
    assert {"seed", "device", "spec", "dtype", "schedule", "versions", "grader", "format"} <= key.keys()
    assert {"torch", "triton", "transformers", "peft", "bitsandbytes"} <= key["versions"].keys()
    assert len(key["grader"]) == 64 and key["seed"] == SEED

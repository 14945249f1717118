"""Puzzle C's oracle store: what it keeps is what was computed, bit for bit; a missing, stale or altered entry is
recomputed, never used; and the noise floor's activation checkpointing (which bounds the judge's memory) leaves
its gradients as they were."""

from __future__ import annotations

import json
import os
import shutil
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
    assert a.losses == b.losses
    assert [(m.step, m.batch, m.length, m.loss) for m in a.micro] == [(m.step, m.batch, m.length, m.loss) for m in b.micro]
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


@pytest.mark.slow
def test_a_grading_from_the_store_gives_the_verdicts_of_one_that_computed_and_the_box_never_sees_it(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Grade C's `correct` twice with one store: the reference (the store is empty: it trains and stores the oracle),
    then a submission that compiles as the reference does but first looks for the store and raises if it finds an
    oracle there (from the box it finds an empty directory). Same statuses, same noise floor and tolerances."""
    from tests.verdicts import BROKEN, grade

    # pytester's HOME, under the grading's own directory, which the box reads: only the store's own mount hides it
    store = Path.home() / ".cache" / "unsloth-puzzle-grader" / f"self-test-{os.getpid()}"
    monkeypatch.setenv("GRADER_ORACLE_STORE", str(store))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    try:
        computed = grade(pytester, "solutions", puzzles=("C",), criteria=("C.correct",))
        assert "training it here" in computed["output"] and list(store.glob("*.pt")), computed["output"][-3000:]
        loaded = grade(pytester, BROKEN / "x_reads_the_oracle_store.py", puzzles=("C",), criteria=("C.correct",))
        assert "loaded from the oracle store" in loaded["output"], loaded["output"][-3000:]
    finally:
        shutil.rmtree(store, ignore_errors=True)
    ours, theirs = (card["puzzles"]["C"]["criteria"]["correct"] for card in (computed, loaded))
    assert ours["status"] == theirs["status"] == "passed", theirs["detail"]
    floor = lambda detail: detail.split("; compiled, largest")[0]  # noqa: E731 (the floor and the tolerances)
    assert floor(ours["detail"]) == floor(theirs["detail"])


def test_readers_share_the_entry_and_a_writer_waits_for_them(trained: run.CRun, tmp_path: Path):
    import threading

    store, key = OracleStore(tmp_path), oracle_store.key(trained, SEED)
    waited: list[str] = []
    reading = threading.Event()
    release = threading.Event()

    def reader() -> None:
        with store.turn(key, lambda: None, shared=True):
            reading.set()
            release.wait(5)

    threading.Thread(target=reader, daemon=True).start()
    assert reading.wait(5)
    with store.turn(key, lambda: waited.append("second reader"), shared=True):
        pass  # readers side by side: no wait
    assert waited == []
    writer_done = threading.Event()
    threading.Thread(target=lambda: (store.turn(key, lambda: waited.append("writer")).__enter__(), writer_done.set()),
                     daemon=True).start()
    assert not writer_done.wait(0.5) and waited == ["writer"]  # the writer waits for the reader
    release.set()
    assert writer_done.wait(5)

"""Puzzle C's oracle store: what it keeps is what was computed, bit for bit; a missing, stale or altered entry is
recomputed, never used; and the noise floor's activation checkpointing (which bounds the judge's memory) leaves
its gradients as they were."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import bitsandbytes  # noqa: F401  (at collection: pytester drops from sys.modules what a test of its imports first,
# and bitsandbytes cannot be imported twice in one process: its torch.library operators are defined once)
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
    assert {"seed", "environment", "spec", "dtype", "schedule", "grader", "format"} <= key.keys()
    assert {"device", "python", "torch", "triton", "transformers", "peft", "bitsandbytes"} <= key["environment"].keys()
    assert len(key["grader"]) == 64 and key["seed"] == SEED


@pytest.mark.slow
def test_a_grading_loads_the_stored_oracle_and_its_box_never_sees_it(pytester: pytest.Pytester,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """The store filled here (the oracle and floor trained in this process for the self-tests' grading seed), then one
    grading of a submission that compiles as the reference does but first looks for the store and raises if it finds
    an oracle there: the grading loads the stored oracle, judges with its floor and tolerances, and the box finds an
    empty directory (bubblewrap's mount over the store, which lies in pytester's HOME under the grading's own
    directory, which the box reads)."""
    from tests.verdicts import BROKEN, SEED as GRADING_SEED, grade

    store = Path.home() / ".cache" / "unsloth-puzzle-grader" / f"self-test-{os.getpid()}"
    monkeypatch.setenv("GRADER_ORACLE_STORE", str(store))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    c_run = run.setting(torch.device("cpu"), GRADING_SEED)
    seconds = run._train_both(c_run, GRADING_SEED, Progress(None, None))
    try:
        OracleStore(store).save(oracle_store.key(c_run, GRADING_SEED), c_run.eager, c_run.eager_floor, seconds)
        card = grade(pytester, BROKEN / "x_reads_the_oracle_store.py", puzzles=("C",), criteria=("C.correct",))
    finally:
        shutil.rmtree(store, ignore_errors=True)
    assert "loaded from the oracle store" in card["output"], card["output"][-3000:]
    correct = card["puzzles"]["C"]["criteria"]["correct"]
    assert correct["status"] == "passed", correct["detail"]
    floor = lambda summary: summary.split("; compiled, largest")[0].split("\n")[-1]  # noqa: E731 (floor, tolerances)
    judged_here = standard.judge(c_run.eager_floor, c_run.eager, c_run.eager_floor).summary
    assert floor(judged_here) in correct["detail"]


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

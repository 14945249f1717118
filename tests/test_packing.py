"""grader.batch packs GPU gradings by memory: a puzzle whose footprint was never measured runs alone on its GPU; once
one grading of it finished, its measured footprint decides how many share a GPU; --jobs bounds them all; a grading
that does not fit waits for one to finish."""

from __future__ import annotations

import threading
import time

from grader.batch.packing import CONTEXT_BYTES, GIB, MARGIN, Footprints, GpuPacker, run_packed, starved

C_RESOURCES = {"judge": 2 * GIB, "box": 12 * GIB}  # held at once: 14 GiB + two contexts
C_FIRST = {**C_RESOURCES, "one_off": 15 * GIB}  # the grading that trained C's oracle (the store did not have it)


def test_an_unmeasured_puzzle_runs_alone_then_its_footprint_packs_the_gpu():
    packer = GpuPacker(["0"], jobs=8, capacity={"0": 80 * GIB})
    first = packer.place("C")
    assert first.reserved is None  # the whole GPU
    blocked = threading.Event()

    def second() -> None:
        packer.place("C")
        blocked.set()

    threading.Thread(target=second, daemon=True).start()
    assert not blocked.wait(0.3), "a second grading started beside one of unknown footprint"
    packer.release(first, C_FIRST)
    assert blocked.wait(5)
    # the first trained the oracle: until a grading that loaded it finishes, each is given room to train one too
    computing = int((15 * GIB + 12 * GIB + 2 * CONTEXT_BYTES) * MARGIN)
    assert packer.footprints.need("C") == computing
    third = packer.place("C")  # 2 x 34.8 GiB fit in 80, a third does not
    assert third.reserved == computing and packer._reserve("0", "C") is False
    for placement in list(packer.running["0"]):
        packer.release(placement, C_RESOURCES)  # these loaded the oracle from the store
    need = int((14 * GIB + 2 * CONTEXT_BYTES) * MARGIN)
    assert packer.footprints.need("C") == need
    placed = [packer.place("C") for _ in range(4)]  # 80 GiB hold 4 x 19.2 GiB; the fifth waits
    assert [p.side_by_side for p in placed] == [4, 4, 4, 4]
    assert packer._reserve("0", "C") is False


def test_jobs_bound_the_gradings_whatever_memory_allows():
    footprints = Footprints()
    footprints.learn("A", {"judge": GIB, "box": GIB})
    packer = GpuPacker(["0", "1"], jobs=3, capacity={"0": 80 * GIB, "1": 80 * GIB}, footprints=footprints)
    placed = [packer.place("A") for _ in range(3)]
    assert sorted(p.gpu for p in placed) == ["0", "0", "1"]  # spread over the GPUs, least loaded first
    done = threading.Event()
    threading.Thread(target=lambda: (packer.place("A"), done.set()), daemon=True).start()
    assert not done.wait(0.3)
    packer.release(placed[0], None)
    assert done.wait(5)


def test_side_by_side_is_the_most_that_shared_the_gpu_while_it_ran():
    footprints = Footprints()
    footprints.learn("D", {"judge": 20 * GIB, "box": 3 * GIB})
    packer = GpuPacker(["0"], jobs=4, capacity={"0": 80 * GIB}, footprints=footprints)
    a = packer.place("D")
    b = packer.place("D")
    packer.release(b, None)
    time.sleep(0)
    assert (a.side_by_side, b.side_by_side) == (2, 2)
    c = packer.place("D")
    assert c.side_by_side == 2 and a.side_by_side == 2


def test_a_grading_asked_to_run_alone_waits_for_an_idle_gpu():
    footprints = Footprints()
    footprints.learn("A", {"judge": GIB, "box": GIB})
    packer = GpuPacker(["0"], jobs=4, capacity={"0": 80 * GIB}, footprints=footprints)
    first = packer.place("A")
    done = threading.Event()
    threading.Thread(target=lambda: (packer.place("A", alone=True), done.set()), daemon=True).start()
    assert not done.wait(0.3)
    packer.release(first, None)
    assert done.wait(5) and packer.running["0"][0].reserved is None


def _card(*, complete: bool, detail: str) -> dict:
    return {"puzzles": {"C": {"complete": complete, "criteria": {
        "correct": {"status": "not_measured" if not complete else "passed", "grader_failure": not complete,
                    "detail": detail}}}}}


def test_a_grading_starved_of_memory_is_graded_once_more_alone():
    footprints = Footprints()
    footprints.learn("C", C_RESOURCES)
    packer = GpuPacker(["0"], jobs=4, capacity={"0": 80 * GIB}, footprints=footprints)
    starved_card = _card(complete=False, detail="the submission's run ran out of memory within its allowance ...")
    cards = iter([starved_card, _card(complete=True, detail="within tolerance")])
    seen = []

    def grade(gpu: str) -> dict:
        seen.append([p.reserved for p in packer.running[gpu]])
        return next(cards)

    card, placement = run_packed(packer, "C", grade, lambda c: c)
    assert card["puzzles"]["C"]["complete"] and placement.reserved is None  # the second time, the whole GPU
    assert seen == [[footprints.need("C")], [None]]
    # a grading incomplete for another reason (a gate a CPU cannot decide) is not graded again
    assert not starved(_card(complete=False, detail="needs CUDA"), "C")

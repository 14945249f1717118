"""pytest-benchmark in the default (isolated) grading run: what the worker measures reaches pytest-benchmark's JSON,
its saved history and its comparison exactly as in a `--no-isolation` run (grader/plugins/benchmark_relay.py).

The benchmarks below time a test clock that each round advances by a known step, so their rounds are the same in
every run, and equal to what the test file says.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics

from tests.verdicts import run_with_plugin

BENCH = '''
import itertools
import os

import pytest

SLOWDOWN = float(os.environ.get("BENCH_SLOWDOWN", "1"))
ROUNDS_S = (2**-10, 2**-8, 2**-9)  # each round's duration on the test clock (exact in binary)
_now = [0.0]


def clock():
    return _now[0]


def ticking(steps):
    steps = itertools.cycle(steps)

    def call():
        _now[0] += next(steps) * SLOWDOWN
        return "result"
    return call


@pytest.mark.benchmark(group="ticks", timer=clock)
def test_ticks(benchmark):
    assert benchmark.pedantic(ticking(ROUNDS_S), rounds=len(ROUNDS_S)) == "result"
    benchmark.extra_info.update(per_weight=["gate_proj (4096, 14336): 101.5 us"], speedup=1.25)


@pytest.mark.benchmark(group="ticks", timer=clock)
@pytest.mark.parametrize("scale", [1, 4])
def test_scaled(benchmark, scale):
    benchmark.pedantic(ticking([scale * s for s in ROUNDS_S]), rounds=len(ROUNDS_S), iterations=2)


def test_calibrated(benchmark):
    benchmark(sum, range(100))


def test_not_measured(benchmark):
    pytest.skip("speed is measured on a GPU only")


@pytest.mark.benchmark(group="raises", timer=clock)
def test_raises_in_its_second_round(benchmark):
    calls = []

    def once():
        calls.append(1)
        _now[0] += 2**-7
        assert len(calls) < 2, "second round"
    benchmark.pedantic(once, rounds=2)


@pytest.mark.criterion("A", "correct")  # a criterion, so the grading run writes a scorecard
def test_without_benchmark():
    with open("ran-in.txt", "a") as f:  # which process ran the tests: an xdist worker, or pytest's own
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")


def test_kernel_times(request):  # as A's speed test records each weight's CUDA-event samples
    from grader.plugins.benchmark_relay import record_samples

    for shape, samples in KERNEL_SAMPLES_S.items():
        assert record_samples(request.config, name=f"candidate {shape}", group="A-kernel-times",
                              fullname=f"test_bench.py::test_kernel_times[{shape}]", samples_s=list(samples),
                              extra_info={"weight": shape}, clock="cuda events")


KERNEL_SAMPLES_S = {"8192x2048": (2**-14, 2**-13, 2**-14), "4096x1024": (2**-15, 2**-15, 2**-16)}
'''
KERNEL_SAMPLES_S = {"8192x2048": (2**-14, 2**-13, 2**-14), "4096x1024": (2**-15, 2**-15, 2**-16)}
DETERMINISTIC = ["test_bench.py::test_ticks", "test_bench.py::test_scaled[1]", "test_bench.py::test_scaled[4]"]
ROUNDS_S = (2**-10, 2**-8, 2**-9)
GRADING = ("--submission", "solutions")  # a grading run: isolated unless --no-isolation


def _rounds(scale: int, iterations: int) -> list[float]:
    """Each round's time per iteration on the test clock: `iterations` steps of the cycled `ROUNDS_S`."""
    steps = itertools.cycle(scale * s for s in ROUNDS_S)
    return [sum(next(steps) for _ in range(iterations)) / iterations for _ in ROUNDS_S]


def _run(pytester, monkeypatch, *args):
    pytester.makepyfile(test_bench=BENCH)
    return run_with_plugin(pytester, monkeypatch, *GRADING, *args)


def test_an_isolated_run_records_what_an_unisolated_run_records(pytester, monkeypatch):
    runs = {}
    for mode, extra in (("plain", ("--no-isolation",)), ("isolated", ())):
        result = _run(pytester, monkeypatch, "--benchmark-json", f"{mode}.json", "--benchmark-cprofile", "tottime",
                      *extra)
        result.assert_outcomes(passed=6, failed=1, skipped=1)
        out = result.stdout.str() + result.stderr.str()  # pytest-benchmark's messages go to stderr
        assert "Wrote benchmark data in" in out and "benchmark 'ticks': 3 tests" in out, out[-3000:]
        runs[mode] = json.loads((pytester.path / f"{mode}.json").read_text())
        # The table shows a benchmark whose function raised after its first round (its one round: 2**-7 s, 7.8125
        # ms); the JSON leaves it out.
        assert re.search(r"^test_raises_in_its_second_round +7\.8125 ", out, re.M), out[-3000:]
    assert (pytester.path / "ran-in.txt").read_text().split() == ["main", "gw0"]
    plain, isolated = runs["plain"], runs["isolated"]
    names = [b["fullname"] for b in plain["benchmarks"]]
    kernels = [f"test_bench.py::test_kernel_times[{shape}]" for shape in KERNEL_SAMPLES_S]
    assert names == [*DETERMINISTIC, "test_bench.py::test_calibrated", *kernels], names
    assert [b["fullname"] for b in isolated["benchmarks"]] == names
    for before, after in zip(plain["benchmarks"], isolated["benchmarks"]):
        assert before.keys() == after.keys() and before["stats"].keys() == after["stats"].keys(), (before, after)
        for key in ("group", "name", "param", "params", "extra_info", "options"):
            assert before[key] == after[key], (key, before[key], after[key])
        assert ({c["function_name"] for c in before.get("cprofile", ())}  # none where the grader's clock timed it
                == {c["function_name"] for c in after.get("cprofile", ())})
    by_name = {b["fullname"]: b for b in isolated["benchmarks"]}
    for b in plain["benchmarks"][:3]:  # the test clock's rounds: the same stats, and the rounds the test measured
        assert b["stats"] == by_name[b["fullname"]]["stats"], b["fullname"]
        assert b["stats"]["data"] == _rounds(b["params"]["scale"] if b["params"] else 1, b["stats"]["iterations"])
    assert by_name["test_bench.py::test_ticks"]["extra_info"]["speedup"] == 1.25
    for shape, samples in KERNEL_SAMPLES_S.items():  # the grader's own samples, a round each, in both runs
        kernel = by_name[f"test_bench.py::test_kernel_times[{shape}]"]
        assert kernel["stats"]["data"] == list(samples) and kernel["stats"]["median"] == statistics.median(samples)
        assert kernel["options"]["timer"] == "cuda events" and kernel["extra_info"] == {"weight": shape}
    assert by_name["test_bench.py::test_calibrated"]["stats"]["rounds"] == len(
        by_name["test_bench.py::test_calibrated"]["stats"]["data"]) > 1
    assert plain["machine_info"].keys() == isolated["machine_info"].keys()
    assert plain["machine_info"]["grader_environment"] == isolated["machine_info"]["grader_environment"]
    assert isolated["machine_info"]["grader_environment"]["device"], isolated["machine_info"]


def test_autosave_keeps_history_and_the_next_run_compares_against_it(pytester, monkeypatch):
    storage = pytester.path / "history"
    keep = ("--benchmark-storage", f"file://{storage}", "-k", "ticks or scaled or without")
    first = _run(pytester, monkeypatch, *keep, "--benchmark-autosave", "--benchmark-only")
    first.assert_outcomes(passed=3, skipped=1)  # --benchmark-only skips the test without a benchmark
    saved = sorted(storage.glob("*/*.json"))
    assert [p.name[:5] for p in saved] == ["0001_"], saved
    history = json.loads(saved[0].read_text())
    assert [b["fullname"] for b in history["benchmarks"]] == DETERMINISTIC
    assert history["benchmarks"][0]["stats"]["median"] == statistics.median(ROUNDS_S)  # test_ticks' own rounds
    assert history["machine_info"]["grader_environment"]["device"] and "commit_info" in history

    again = _run(pytester, monkeypatch, *keep, "--benchmark-autosave", "--benchmark-compare",
                 "--benchmark-compare-fail", "mean:5%", "--score-json", "card.json", "--report-html", "card.html")
    again.assert_outcomes(passed=4)
    out = again.stdout.str() + again.stderr.str()
    assert "Comparing against benchmarks from" in out and saved[0].stem in out, out[-3000:]
    # The scorecard and its page carry the comparison: each benchmark's median now and in the saved run.
    compared = json.loads((pytester.path / "card.json").read_text())["benchmarks"]
    assert compared["compared_with"] == saved[0].stem, compared
    ticks = next(e for e in compared["entries"] if e["fullname"] == "test_bench.py::test_ticks")
    assert ticks["median_s"] == ticks["previous_median_s"] == statistics.median(ROUNDS_S), ticks
    page = (pytester.path / "card.html").read_text()
    assert f"compared with the saved run {saved[0].stem}" in page and "1.000x" in page, page[-2000:]
    assert out.count("(NOW)") == 3 and out.count(f"({saved[0].stem[:4]}") == 3, out[-3000:]
    assert "Performance has regressed" not in out and again.ret == 0
    assert [p.name[:5] for p in sorted(storage.glob("*/*.json"))] == ["0001_", "0002_"]

    monkeypatch.setenv("BENCH_SLOWDOWN", "2")
    slower = _run(pytester, monkeypatch, *keep, "--benchmark-compare", "0002", "--benchmark-compare-fail", "mean:5%")
    out = slower.stdout.str() + slower.stderr.str()
    assert "Performance has regressed" in out and "test_ticks" in out and slower.ret != 0, out[-3000:]

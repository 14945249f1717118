"""The warm compile cache of CPU boxes (`grader.box.compile_cache`): made once, by the judge's own subprocess, used
only when complete, and copied into a box's empty cache, never into one that exists."""

from __future__ import annotations

import time

from grader.box import compile_cache


def test_the_warm_cache_is_made_once_and_copied_into_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    warm = compile_cache.warm_directory()
    assert warm is not None and (warm / compile_cache.DONE).exists(), "the warm-up compile failed"
    assert warm.parent == tmp_path / "xdg" / "unsloth-puzzle-grader" / "inductor-cpu"
    assert any(p.is_file() for p in warm.rglob("*") if p.name != compile_cache.DONE), "inductor wrote nothing"
    started = time.perf_counter()
    assert compile_cache.warm_directory() == warm and time.perf_counter() - started < 1.0, "made twice"

    box_cache = tmp_path / "box" / "inductor"
    compile_cache.seed(warm, box_cache)
    copied = sorted(p.relative_to(box_cache) for p in box_cache.rglob("*"))
    assert copied == sorted(p.relative_to(warm) for p in warm.rglob("*") if p.name != compile_cache.DONE)

    kept = tmp_path / "box2" / "inductor"
    kept.mkdir(parents=True)
    compile_cache.seed(warm, kept)
    assert not any(kept.iterdir()), "a cache that exists is the box's own: never overwritten"


def test_an_incomplete_warm_cache_is_not_used(tmp_path):
    half = tmp_path / "half"
    (half / "fxgraph").mkdir(parents=True)
    compile_cache.seed(half, tmp_path / "box")
    assert not (tmp_path / "box").exists()

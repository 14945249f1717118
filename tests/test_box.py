"""The box (`grader.box`): the submission runs in a process of its own, under bubblewrap where it works, and reaches
nothing that decides a verdict. Its wire carries tensors by identity and refuses anything but plain data back; a
stall or a crash is named with the submission's own frame; the box keeps the grader's files, the host's network and
the grader's process out of reach; a run says which box it used, and refuses to grade unboxed when asked for one.

CI has bubblewrap (scripts/setup.sh installs it), so there a missing one fails these tests instead of skipping them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

from grader.box import compile_cache, sandbox, wire
from grader.box.client import Box, BoxStopped
from grader.puzzle_a import oracles
from grader.puzzle_a.strategies import WeightCase
from tests.batching import run_batch, scorecard
from tests.verdicts import BROKEN, REPO, SEED, grade

BOX = sandbox.probe("auto")
if not BOX.boxed:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but bubblewrap cannot run: {BOX.detail}", pytrace=False)
    pytest.skip(f"bubblewrap cannot run here: {BOX.detail}", allow_module_level=True)


def _box(name: str, judging: Callable[[], str | None] = lambda: None) -> Box:
    return Box(puzzle="A", spec=str(BROKEN / f"{name}.py"), root=REPO, device="cpu", info=BOX, progress=None,
               judging=judging)


def _weight() -> oracles.Quantized:
    return oracles.quantize(WeightCase((64, 32), torch.bfloat16, 1.0, False, False, seed=1).make())


def test_tensors_cross_by_identity_and_in_place_writes_follow(tmp_path):
    """The runner sees one tensor object per judge tensor, at one address, rewritten in place when the judge
    rewrites it; and a reply may hold only plain data."""
    table, mirrors = wire.MirrorTable(), wire.Mirrors()
    t = torch.arange(6.0)
    mirrors.pack("x", (t,), {}, tmp_path / "1.pt")
    (first,), _ = table.unpack(tmp_path / "1.pt")[1:]
    mirrors.pack("x", (t,), {}, tmp_path / "2.pt")
    (again,), _ = table.unpack(tmp_path / "2.pt")[1:]
    t.mul_(2)
    mirrors.pack("x", (t,), {}, tmp_path / "3.pt")
    (rewritten,), _ = table.unpack(tmp_path / "3.pt")[1:]
    assert first is again is rewritten and torch.equal(rewritten, torch.arange(6.0) * 2)
    ptr = first.data_ptr()
    assert rewritten.data_ptr() == ptr, "an in-place rewrite keeps the runner's storage"

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"ok": True, "value": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(wire.ProtocolError, match="not plain data"):
        wire.load_reply(tmp_path / "evil.pt")
    wire.save_reply({"ok": True, "value": {"t": torch.ones(2), "n": 3}}, tmp_path / "good.pt")
    assert wire.load_reply(tmp_path / "good.pt")["value"]["n"] == 3


def test_a_stall_is_stopped_at_its_deadline_naming_the_submission_frame():
    box = _box("x_hangs")
    q = _weight()
    try:
        with pytest.raises(BoxStopped) as stopped:
            box.run("A.call", q.weight, q.quant_state, deadline=8)
    finally:
        box.close()
    said = str(stopped.value)
    assert "did not return within 8 s" in said and "x_hangs.py" in said, said


def test_a_crash_is_named_with_its_signal_and_frame_and_the_next_call_gets_a_fresh_runner():
    judging = ["A.correct"]
    box = _box("x_segfaults", lambda: judging[0])
    q = _weight()
    try:
        with pytest.raises(BoxStopped) as crashed:
            box.run("A.call", q.weight, q.quant_state, deadline=60)
        said = str(crashed.value)
        assert "killed by SIGSEGV" in said and "x_segfaults.py" in said, said
        judging[0] = "A.single_triton_kernel"
        with pytest.raises(BoxStopped):
            box.run("A.call", q.weight, q.quant_state, deadline=60)  # a fresh runner, the same crash
        judging[0] = "A.tested_in_f16_and_bf16"
        with pytest.raises(BoxStopped) as stopped:
            box.run("A.call", q.weight, q.quant_state, deadline=60)  # no third runner for this puzzle
        # told once: the verdicts of the calls that crashed say why, later ones point there
        assert str(stopped.value) == ("not judged: puzzle A's submission process ended 2 times "
                                      "(see A.correct, A.single_triton_kernel)"), stopped.value
    finally:
        box.close()


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_the_grader_on_disk_is_out_of_reach_and_the_next_submission_is_graded_as_alone(tmp_path_factory):
    before = _tree_digest(REPO / "grader")
    good = REPO / "tests" / "good" / "a_2d_tile_custom_op.py"
    out, log = run_batch(tmp_path_factory, "box-writes", [str(BROKEN / "x_writes_grader_files.py"), str(good),
                                                          "--puzzle", "A", "--jobs", "1", "--", "--criterion",
                                                          "A.correct", "-k", "linear4bit", "--hypothesis-profile", "ci"])
    assert _tree_digest(REPO / "grader") == before, "a submission changed the grader's files on disk"
    assert any(compile_cache.root().glob(f"*/{compile_cache.DONE}")), "the CPU boxes had no warm compile cache"
    assert not list(compile_cache.root().rglob("poisoned")), "a submission wrote into the warm compile cache"
    hostile, honest = scorecard(out, "x_writes_grader_files"), scorecard(out, "a_2d_tile_custom_op")
    assert hostile["puzzles"]["A"]["criteria"]["correct"]["status"] == "passed", hostile  # its kernel is honest
    assert honest["puzzles"]["A"]["criteria"]["correct"]["status"] == "passed", (honest, log)
    assert honest["box"]["kind"] == "bubblewrap", honest["box"]


@pytest.mark.slow
def test_the_hosts_loopback_is_out_of_reach(pytester, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    monkeypatch.setenv("GRADER_TEST_LISTENER_PORT", str(listener.getsockname()[1]))
    card = grade(pytester, BROKEN / "x_connects_localhost.py", puzzles=("A",), criteria=("A.correct",),
                 extra=("-k", "linear4bit"))
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    listener.close()
    # The submission returns a correct result exactly when its connection was refused.
    assert card["puzzles"]["A"]["criteria"]["correct"]["status"] == "passed", card["output"][-2000:]


def _python_only_path(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    return str(bin_dir)


@pytest.mark.slow
def test_without_bubblewrap_the_run_says_so_and_refuses_when_a_box_is_required(tmp_path):
    env = {**os.environ, "PATH": _python_only_path(tmp_path)}
    env.pop("PYTEST_XDIST_WORKER", None)
    base = [sys.executable, "-m", "pytest", str(REPO / "grader" / "puzzle_a"), "--rootdir", str(REPO),
            "-p", "no:cacheprovider", "--submission", str(BROKEN / "a_plain_control.py"), "--criterion", "A.correct",
            "-k", "linear4bit and fp16", "--grader-seed", str(SEED), "--hypothesis-profile", "ci"]
    refused = subprocess.run([*base, "--box", "bwrap"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR, refused.stdout + refused.stderr
    assert "--box bwrap: bubblewrap (bwrap) is not installed" in refused.stderr, refused.stderr
    score = tmp_path / "score.json"
    unboxed = subprocess.run([*base, "--score-json", str(score)], cwd=tmp_path, env=env, capture_output=True,
                             text=True)
    card = json.loads(score.read_text())
    assert card["box"]["kind"] == "none" and "not installed" in card["box"]["detail"], card["box"]
    assert "box: NONE, the submission ran in a plain separate process" in unboxed.stdout, unboxed.stdout[-2000:]
    assert card["puzzles"]["A"]["criteria"]["correct"]["status"] == "passed", unboxed.stdout[-2000:]
    assert shutil.which("bwrap"), "this test hides bubblewrap; the others need it"


def test_a_hidden_directory_is_covered_even_inside_a_directory_the_box_reads(tmp_path):
    """The judge's own store under a directory the runner must read (the grading's directory under /tmp, say) is
    still covered by an empty tmpfs: bubblewrap mounts it after the read-only binds."""
    from grader.box import sandbox

    readable, store, elsewhere = tmp_path, tmp_path / "store", Path("/tmp") / f"not-read-{tmp_path.name}"
    store.mkdir()
    elsewhere.mkdir()
    try:
        args = sandbox._bwrap_args(tmp_path / "exchange", [readable], [store, elsewhere])
    finally:
        elsewhere.rmdir()
    assert args[args.index("--tmpfs", args.index(str(readable)))+1] == str(store)
    assert str(elsewhere) not in args  # under the private /tmp and read by nobody: hidden already

"""The judge's side of the box: one runner process per puzzle, started on first use, each call with a deadline.

`Box.run(task, *args, deadline=S)` sends a request (`grader.box.wire`), waits at most S seconds for the reply and
returns the task's value. What can go wrong is told apart, in words a solver understands:

- the submission raised: `SubmissionError`, with its type, message, the submission's own frame, and, where a
  CPU cannot decide it (interpreter limits, CUDA-only code), the reason (`undecidable`);
- the runner ended during the call (a segfault, `os._exit`, a kill, the out-of-memory killer): `BoxStopped`
  naming the signal or exit status and, from faulthandler's dump, the submission's frame;
- the call did not return by its deadline: the runner is killed, `BoxStopped` says so with the submission's
  stack at the time (faulthandler's dump, taken a few seconds before the deadline).

A runner that ended is replaced for the next call; after `grader.judging.budget.CRASHES_PER_PUZZLE` endings the
puzzle's remaining calls fail at once, each pointing to the criteria whose verdicts tell the endings (`judging` names
the criterion each call is made for), so that a crash is told once. Every reply's state report (settings the
submission changed, tampering) is kept for the judge's guard plugin (`grader.box.reports`).
"""

from __future__ import annotations

import collections
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from grader.box import compile_cache, reports, sandbox, wire
from grader.box.runner import FAULT_FILE, STALL_FILE, UNCAUGHT_FILE
from grader.box.signals import describe_signal
from grader.judging.budget import Crashes

START_DEADLINE_S = 600.0  # importing torch, Triton and the submission (a first Triton compile included)
STDERR_TAIL_LINES = 15  # of the runner's own output, quoted when it ends without a better reason
EXCHANGE_ROOM_BYTES = 16 * 2**30
GRADER_HOME = Path(__file__).resolve().parents[2]  # holds the judge's own `grader` package: the runner imports it


class SubmissionError(Exception):
    """The submission's code raised inside a task (or a task found its result unusable)."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        super().__init__(self.describe())

    @property
    def undecidable(self) -> str | None:
        """Why this machine cannot decide what the submission did, or None."""
        return self.error.get("undecidable")

    def describe(self) -> str:
        """`type: message (raised at file:line in function)`, or the fault a task found."""
        e = self.error
        if e.get("fault"):
            return e["message"]
        where = f" (raised at {e['where']}{'' if e.get('from_submission') else ', not in the submission'})" \
            if e.get("where") else ""
        return f"{e['type']}{': ' + e['message'] if e['message'] else ''}{where}"


class BoxStopped(BaseException):
    """The runner ended or stalled during a call, or the puzzle's runner ended too often to try again.

    A BaseException, as pytest's own `Failed` is: it fails the test at once and Hypothesis does not catch it to
    shrink (replaying a crash or a hang only costs the puzzle its remaining runner starts)."""


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    exchange: Path
    to_runner: Any
    from_runner: int
    buffer: bytes = b""
    n: int = 0
    mirrors: wire.Mirrors = field(default_factory=wire.Mirrors)
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES))


class Box:
    """One puzzle's runner, as the judge sees it."""

    def __init__(self, *, puzzle: str, spec: str, root: Path, device: str, info: sandbox.BoxInfo,
                 progress: Callable[[str], None] | None, judging: Callable[[], str | None] = lambda: None,
                 hidden: list[Path] = ()) -> None:
        self.puzzle, self.spec, self.root, self.device, self.info, self.progress, self.judging = \
            puzzle, spec, root, device, info, progress, judging
        self.hidden = list(hidden)  # directories of the judge's that the runner must not see (an empty tmpfs there)
        self._process: _Process | None = None
        self.peak_bytes: int | None = None  # the most GPU memory any of its runners reserved (their own reports)
        self.crashes = Crashes()  # its runners that ended during a call
        self.hello: dict[str, Any] | None = None

    # ------------------------------------------------------------ lifecycle

    def _start(self) -> _Process:
        stop = self.crashes.stop(self.puzzle, "submission process")
        if stop is not None:
            raise BoxStopped(stop)
        exchange = Path(tempfile.mkdtemp(prefix=f"grader-box-{self.puzzle}-", dir=_exchange_root()))
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        argv = [sys.executable, "-m", "grader.box.runner", "--exchange", str(exchange), "--fd-in", str(to_r),
                "--fd-out", str(from_w), "--puzzle", self.puzzle, "--submission", self.spec, "--root", str(self.root),
                "--device", self.device, "--sys-path", json.dumps(sys.path),
                *(["--progress"] if self.progress is not None else [])]
        # Boxed only, as C's oracle store: an unboxed submission could write into what later boxes start from.
        warm = compile_cache.warm_directory() if self.device == "cpu" and self.info.boxed else None
        if warm is not None:
            argv += ["--warm-compile-cache", str(warm)]
        spec_path = Path(self.spec) if Path(self.spec).is_absolute() else self.root / self.spec
        readable = sandbox.readable_paths([*sys.path, spec_path, self.root, GRADER_HOME, sys.prefix,
                                           sys.base_prefix, Path(sys.executable).parent, *filter(None, [warm])])
        cmd = sandbox.command(self.info, argv, exchange=exchange, readable=readable, hidden=self.hidden)
        env = dict(os.environ)
        private = "/tmp" if self.info.boxed else str(exchange)
        env.update(HOME=private, TMPDIR=private, TRITON_CACHE_DIR=f"{private}/triton",
                   TORCHINDUCTOR_CACHE_DIR=f"{private}/inductor", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(GRADER_HOME), *filter(None, [env.get("PYTHONPATH")])]))
        env.pop("PYTEST_XDIST_WORKER", None)
        proc = subprocess.Popen(cmd, pass_fds=(to_r, from_w), env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        os.close(to_r)
        os.close(from_w)
        process = _Process(proc, exchange, os.fdopen(to_w, "wb"), from_r)
        threading.Thread(target=_pump, args=(proc.stderr, process.stderr_tail), daemon=True).start()
        self._process = process
        try:
            hello = self._receive(process, 0, START_DEADLINE_S, "starting (importing torch and the submission)")
        except BoxStopped:
            self._process = None
            raise
        self.hello = hello["value"]
        return process

    def close(self) -> None:
        """End the runner (if any) and remove its exchange directory."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.to_runner.close()
        except OSError:
            pass
        try:
            process.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill(process)
        os.close(process.from_runner)
        shutil.rmtree(process.exchange, ignore_errors=True)

    def _kill(self, process: _Process) -> None:
        try:
            os.killpg(process.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    # ------------------------------------------------------------ calls

    def describe(self) -> dict[str, Any]:
        """What the runner found in the submission (`grader.box.submission.Loaded.describe`); starts it if needed."""
        if self.hello is None:
            self._start()
        assert self.hello is not None
        return self.hello

    def run(self, task: str, *args: Any, deadline: float, **kwargs: Any) -> Any:
        """Run `task(*args, **kwargs)` in the runner and return its value; SubmissionError or BoxStopped otherwise."""
        process = self._process or self._start()
        process.n += 1
        n = process.n
        process.mirrors.pack(task, args, {**kwargs, "_deadline": deadline}, wire.request_path(process.exchange, n))
        try:
            process.to_runner.write(wire.header(n))
            process.to_runner.flush()
        except OSError:
            pass  # the runner is gone: _receive says why
        reply = self._receive(process, n, deadline, f"{task}")
        if not reply.get("ok"):
            raise SubmissionError(_error_dict(reply.get("error")))
        return reply.get("value")

    def forget(self, tensor: Any) -> None:
        """Send `tensor`'s data again with the next request (the runner's copy was written by the submission)."""
        if self._process is not None:
            self._process.mirrors.forget(tensor)

    def _receive(self, process: _Process, n: int, deadline: float, what: str) -> dict[str, Any]:
        end = time.monotonic() + deadline
        while True:
            while b"\n" not in process.buffer:
                left = end - time.monotonic()
                ready = select.select([process.from_runner], [], [], max(0.0, left))[0] if left > 0 else []
                if not ready:
                    self._stopped(process, self._stall_reason(process, deadline, what))
                chunk = os.read(process.from_runner, 65536)
                if not chunk:
                    self._stopped(process, self._end_reason(process, what))
                process.buffer += chunk
            line, _, process.buffer = process.buffer.partition(b"\n")
            try:
                got = wire.parse_header(line)
            except wire.ProtocolError as exc:
                self._stopped(process, f"the submission's process broke the grader's protocol during {what}: {exc}")
            if isinstance(got, int):
                break
            if self.progress is not None:
                self.progress(got)
        try:
            if got != n:
                raise wire.ProtocolError(f"expected reply {n}, the runner announced {got}")
            reply = wire.load_reply(wire.reply_path(process.exchange, n))
            wire.reply_path(process.exchange, n).unlink(missing_ok=True)
            if not isinstance(reply, dict):
                raise wire.ProtocolError(f"the reply is a {type(reply).__name__}, not a dict")
        except wire.ProtocolError as exc:
            self._stopped(process, f"the submission's process broke the grader's protocol during {what}: {exc}")
        if isinstance(reply.get("peak_bytes"), int):
            self.peak_bytes = max(self.peak_bytes or 0, reply["peak_bytes"])
        state = reply.get("state")
        if isinstance(state, dict):
            reports.record(self.puzzle, {k: [str(x) for x in state.get(k, [])] for k in ("changed", "tampered")})
        if reply.get("poisoned"):  # the runner ends itself after this reply; the next call gets a fresh one
            self._kill(process)
            self._process = None
            self.crashes = self.crashes.add(self.judging(), f"the submission left its process's CUDA context unusable "
                                                            f"during {what}: {reply['poisoned']}")
        return reply

    def _stopped(self, process: _Process, reason: str) -> None:
        self._kill(process)
        self._process = None
        self.crashes = self.crashes.add(self.judging(), reason)
        raise BoxStopped(reason)

    def _stall_reason(self, process: _Process, deadline: float, what: str) -> str:
        stacks = _read(process.exchange / STALL_FILE)
        where = _submission_frame(stacks, self.spec)
        return (f"the submission's call did not return within {deadline:g} s ({what}) and was stopped"
                + (f"; it was at {where}" if where else "") + (f"\n{_trim(stacks)}" if stacks else ""))

    def _end_reason(self, process: _Process, what: str) -> str:
        try:
            code = process.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        fault = _read(process.exchange / FAULT_FILE)
        where = _submission_frame(fault, self.spec)
        if code is not None and (code < 0 or code > 128):
            how = f"was killed by {describe_signal(-code if code < 0 else code - 128)}"
        elif fault.startswith("Fatal Python error"):
            how = f"crashed ({fault.splitlines()[0]})"
        elif (process.exchange / UNCAUGHT_FILE).exists():
            uncaught = _read(process.exchange / UNCAUGHT_FILE)
            return f"the submission's process ended on an exception during {what}:\n{_trim(uncaught)}"
        else:
            how = f"exited without a result (status {code}: os._exit(), or killed from outside)"
        tail = "\n".join(process.stderr_tail)
        return (f"the submission's process {how} during {what}" + (f"; it was at {where}" if where else "")
                + (f"\n{_trim(fault)}" if fault else "") + (f"\nits last output:\n{tail}" if tail and not fault else ""))


def _exchange_root() -> str | None:
    """Where exchange directories go: shared memory when it has room for the largest replies (D's Llama sends its
    gradients and weights back, about 10 GB at Llama-3.2-1B's size), else the temporary directory."""
    shm = "/dev/shm"
    try:
        roomy = os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= EXCHANGE_ROOM_BYTES
    except OSError:
        roomy = False
    return shm if roomy else None


def _pump(stream: Any, tail: collections.deque[str]) -> None:
    """Copy the runner's standard error to the judge's (pytest captures it with the test's output), keeping the
    last lines for a verdict on a runner that ended."""
    for raw in iter(stream.readline, b""):
        os.write(2, raw)
        tail.append(raw.decode(errors="replace").rstrip())


def _error_dict(error: Any) -> dict[str, Any]:
    """The error of a reply, as the judge reads it: only the expected keys, as text."""
    error = error if isinstance(error, dict) else {}
    out: dict[str, Any] = {k: str(error.get(k) or "") for k in ("type", "message", "where", "traceback")}
    out["undecidable"] = str(error["undecidable"]) if error.get("undecidable") else None
    out["from_submission"] = bool(error.get("from_submission"))
    out["fault"] = bool(error.get("fault"))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _trim(text: str, lines: int = 40) -> str:
    rows = text.splitlines()
    return "\n".join(rows[:lines] + ([f"... {len(rows) - lines} more lines"] if len(rows) > lines else []))


def _submission_frame(stacks: str, spec: str) -> str:
    """The innermost frame of faulthandler's dump that lies in the submission's file or package, else ''."""
    name = Path(spec).name if spec.endswith(".py") else ""
    stem = spec.rstrip("/").rsplit("/", 1)[-1]
    for line in stacks.splitlines():
        text = line.strip()
        if text.startswith("File ") and ((name and f"/{name}\"" in text) or (f"/{stem}/" in text)):
            return text  # faulthandler prints the innermost frame first
    return ""

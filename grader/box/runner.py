"""The runner: the one process that imports and runs submission code (`python -m grader.box.runner ...`).

Started by the judge (`grader.box.client`), inside bubblewrap where it runs. It switches the Triton interpreter
on where there is no GPU, snapshots its own global state (`grader.box.state`), imports the submission, says what
it found (message 0), then serves one request at a time: each names a task (`grader.box.tasks`) and its
arguments; the reply carries the task's value or the exception it raised (with the submission's own frame), and
the state report (settings undone, tampering found and put back). faulthandler writes a crash's stacks to
`fault.txt`, and the stacks of a task still running near its deadline to `stall.txt`, both in the exchange
directory, for the judge to name where the submission was.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

FAULT_FILE = "fault.txt"
STALL_FILE = "stall.txt"
UNCAUGHT_FILE = "uncaught.txt"  # an exception that ends the runner itself (at start, say), for the judge to quote
STALL_MARGIN_S = 3.0  # stacks are dumped this long before the judge's deadline


class _ProgressPipe:
    """A stream for `grader.judging.progress.Progress` that sends its `[grader]` lines to the judge over the reply
    pipe (the judge shows them; the runner's own stderr is captured with the test's output)."""

    def __init__(self, outfile: BinaryIO) -> None:
        self.outfile = outfile

    def write(self, text: str) -> None:
        from grader.box import wire

        for line in text.splitlines():
            if line.startswith("[grader] "):
                self.outfile.write(wire.progress_line(line.removeprefix("[grader] ")))

    def flush(self) -> None:
        self.outfile.flush()


def _serve(exchange: Path, infile: BinaryIO, outfile: BinaryIO, ctx: Any, watch: Any, hello: dict[str, Any]) -> None:
    import torch

    from grader.box import wire
    from grader.box.tasks import TASKS, describe_error

    stall = open(exchange / STALL_FILE, "w")  # noqa: SIM115 (held until the process ends)
    table = wire.MirrorTable()
    wire.save_reply({"ok": True, "value": hello, "state": watch.report()}, wire.reply_path(exchange, 0))
    outfile.write(wire.header(0))
    outfile.flush()
    for line in infile:
        n = wire.parse_header(line)
        if not isinstance(n, int):
            raise wire.ProtocolError(f"expected a request, got {line[:200]!r}")
        path = wire.request_path(exchange, n)
        name, args, kwargs = table.unpack(path)
        deadline = kwargs.pop("_deadline", None)
        path.unlink()
        if deadline:
            faulthandler.dump_traceback_later(max(1.0, deadline - STALL_MARGIN_S), file=stall)
        try:
            reply: dict[str, Any] = {"ok": True, "value": TASKS[name](ctx, *args, **kwargs)}
        except BaseException as exc:  # the submission's SystemExit or KeyboardInterrupt too: all are answers
            reply = {"ok": False, "error": describe_error(exc, ctx.submission.files)}
        finally:
            faulthandler.cancel_dump_traceback_later()
        if ctx.device.type == "cuda" and torch.cuda.is_initialized():
            try:
                torch.cuda.synchronize()
                reply["peak_bytes"] = torch.cuda.max_memory_reserved()  # this process's own peak on the GPU so far
                torch.cuda.empty_cache()  # what the submission's allocations left cached goes back, for the judge
            except RuntimeError as exc:  # a sticky CUDA error (an illegal address): this process cannot go on
                reply["poisoned"] = str(exc).splitlines()[0][:300]
        reply["state"] = watch.report()
        try:
            wire.save_reply(reply, wire.reply_path(exchange, n))
        except Exception as exc:  # a value torch cannot save: the task's bug or the submission's object
            wire.save_reply({"ok": False, "state": reply["state"], "error": describe_error(exc, ())},
                            wire.reply_path(exchange, n))
        outfile.write(wire.header(n))
        outfile.flush()
        if "poisoned" in reply:
            os._exit(0)  # the judge starts a fresh runner for the next call


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the grader's runner (started by grader.box.client)")
    parser.add_argument("--exchange", type=Path, required=True)
    parser.add_argument("--fd-in", type=int, required=True)
    parser.add_argument("--fd-out", type=int, required=True)
    parser.add_argument("--puzzle", required=True)
    parser.add_argument("--submission", required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--sys-path", required=True)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--warm-compile-cache", type=Path, default=None)
    args = parser.parse_args(argv)
    fault = open(args.exchange / FAULT_FILE, "w")  # noqa: SIM115 (held until the process ends)
    faulthandler.enable(file=fault, all_threads=True)
    default_hook = sys.excepthook

    def uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        (args.exchange / UNCAUGHT_FILE).write_text("".join(traceback.format_exception(kind, exc, tb))[-6000:])
        default_hook(kind, exc, tb)

    sys.excepthook = uncaught
    sys.path[:] = json.loads(args.sys_path)
    infile, outfile = os.fdopen(args.fd_in, "rb"), os.fdopen(args.fd_out, "wb")
    if args.warm_compile_cache is not None:
        from grader.box.compile_cache import seed

        seed(args.warm_compile_cache, Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]))
    if args.device == "cpu":
        from grader.box.interpreter import use_interpreter

        use_interpreter()  # before anything defines a Triton kernel
    import torch
    import torch._dynamo  # noqa: F401  (importing dynamo rewraps torch functions: before the snapshot)
    import torch._inductor.config  # noqa: F401

    from grader.box import state, tasks
    from grader.box.submission import CALL_GUARDS, load
    from grader.judging.progress import Progress

    tasks.load_puzzle_tasks(args.puzzle)
    watch = state.Watch()
    CALL_GUARDS.append(watch.around_call)
    submission = load(args.submission, args.root)
    ctx = tasks.Context(submission, args.puzzle, torch.device(args.device),
                        Progress(None, None, _ProgressPipe(outfile) if args.progress else None))
    hello = {**submission.describe(), "pid": os.getpid(), "torch": torch.__version__}
    _serve(args.exchange, infile, outfile, ctx, watch, hello)


if __name__ == "__main__":
    main()

"""The sandbox around the runner: bubblewrap (https://github.com/containers/bubblewrap), and what it guarantees.

`--box auto` (the default) uses bubblewrap where it runs here, and otherwise runs the submission in a plain
separate process and says so on the scorecard; `--box bwrap` refuses to grade without it; `--box none` never
uses it. Under bubblewrap the runner gets:

- its own PID namespace: it sees and can signal no process outside (its parent reads as PID 1, which ignores
  its signals);
- its own network namespace: no network, not even the host's loopback (a listener on 127.0.0.1 is unreachable);
- its own IPC, UTS and cgroup namespaces, all capabilities dropped, a new session (no terminal injection);
- the whole filesystem read-only (the grader, the checkout, site-packages), a private writable /tmp and HOME,
  and one writable exchange directory shared with the judge; the GPU's device nodes where there is a GPU.

What it does not do: limit the GPU (a kernel can still fault or spin; the judge's deadline stops it), or keep the
submission from lying about measurements that must be taken beside it (launch counts, timings, dynamo's
counters): the judge re-checks what it can (outputs, gradients, timed outputs), and `grader.box.state` reports
tampering with the measuring code.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "bwrap", "none")
GUARANTEES = ("own PID, network, IPC, UTS and cgroup namespaces; no capabilities; filesystem read-only except a "
              "private /tmp and the exchange directory")


@dataclass(frozen=True)
class BoxInfo:
    """The box a grading run uses: `kind` is "bubblewrap" or "none"; `detail` what it guarantees or why absent."""

    kind: str
    version: str
    detail: str

    @property
    def boxed(self) -> bool:
        """Whether the submission runs inside bubblewrap."""
        return self.kind == "bubblewrap"

    def as_json(self) -> dict[str, str]:
        """The scorecard's `box` entry."""
        return {"kind": self.kind, "version": self.version, "detail": self.detail}


class BoxUnavailable(RuntimeError):
    """`--box bwrap` was asked for and bubblewrap cannot run here."""


def _device_nodes() -> list[str]:
    return sorted(glob.glob("/dev/nvidia*") + glob.glob("/dev/dri/*"))


def _bwrap_args(exchange: Path, readable: list[Path], hidden: list[Path] = ()) -> list[str]:
    """bubblewrap's options: namespaces, a read-only root, private /tmp, the exchange directory, GPU nodes, and an
    empty tmpfs over each `hidden` directory (the judge's own, which the box must neither read nor write)."""
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for node in _device_nodes():
        args += ["--dev-bind", node, node]
    # What the private /tmp and /dev hide but the runner must read (site-packages unpacked under /tmp, a
    # submission in a temporary directory), read-only; then the exchange directory, writable.
    for path in readable:
        args += ["--ro-bind", str(path), str(path)]
    for path in hidden:  # after the binds above: a hidden directory inside a readable one is covered too
        path = path.resolve()
        seen = not _hidden(path) or any(r == path or r in path.parents for r in readable)
        if path.exists() and seen:  # elsewhere under /tmp the private /tmp already hides it
            args += ["--tmpfs", str(path)]
    args += ["--bind", str(exchange), str(exchange), "--chdir", str(exchange)]
    return args


def _hidden(path: Path) -> bool:
    """Whether the box's private /tmp or /dev hides `path` (a path inside them; they themselves stay private)."""
    resolved = path.resolve()
    return any(Path(top) in resolved.parents for top in ("/tmp", "/dev"))


def readable_paths(paths: list[str | Path]) -> list[Path]:
    """Of `paths` (sys.path entries, the submission), those the private /tmp and /dev would hide, deduplicated,
    outermost first."""
    found: list[Path] = []
    for p in paths:
        path = Path(p)
        if not str(p) or not path.exists() or not _hidden(path):
            continue
        path = path.resolve()
        if path.is_file():
            path = path.parent
        if not any(path == f or f in path.parents for f in found):
            found = [f for f in found if path not in f.parents] + [path]
    return found


def command(info: BoxInfo, argv: list[str], *, exchange: Path, readable: list[Path],
            hidden: list[Path] = ()) -> list[str]:
    """The command line that runs `argv` in the box `info` describes (unchanged without one); `hidden` directories
    are covered by an empty tmpfs inside it."""
    if not info.boxed:
        return argv
    return [shutil.which("bwrap") or "bwrap", *_bwrap_args(exchange, readable, hidden), *argv]


@functools.lru_cache(maxsize=None)
def _try_bwrap() -> tuple[bool, str, str]:
    """(works, version, why not): run `true` in the box this module builds."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False, "", "bubblewrap (bwrap) is not installed; bash scripts/setup.sh installs it"
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.split()[-1]
        probe = Path(os.environ.get("TMPDIR", "/tmp"))
        done = subprocess.run([exe, *_bwrap_args(probe, []), sys.executable, "-c", "pass"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return False, "", f"bubblewrap could not be run: {exc}"
    if done.returncode != 0:
        return False, version, f"bubblewrap cannot create its namespaces here: {done.stderr.strip()[:300]}"
    return True, version, ""


def probe(mode: str) -> BoxInfo:
    """The box for `--box MODE`; raises BoxUnavailable for `bwrap` where bubblewrap cannot run."""
    if mode not in MODES:
        raise ValueError(f"--box must be one of {MODES}, got {mode!r}")
    if mode == "none":
        return BoxInfo("none", "", "--box none was given")
    works, version, why = _try_bwrap()
    if works:
        return BoxInfo("bubblewrap", version, GUARANTEES)
    if mode == "bwrap":
        raise BoxUnavailable(f"--box bwrap: {why}")
    return BoxInfo("none", "", why)

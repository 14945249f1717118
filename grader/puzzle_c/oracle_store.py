"""Puzzle C's oracle store: the eager oracle and the noise floor trained once per key, then loaded by every grading
with the same key (`grader.batch`, repeated `pytest grader/` runs on one machine).

What the two eager runs compute depends on the seed, the device, the versions of torch, triton, transformers, peft
and bitsandbytes, and the grader's own code, nothing else: the key holds all of these (the machine and versions as
the scorecard records them, the grader as a hash of its source files). An entry is two files in the store directory: `KEY.pt`, the two training records and the oracle's
seconds as plain data (`grader.box.wire.plain`, loaded with `weights_only=True`), and `KEY.json`, the key in full
and the SHA-256 of `KEY.pt`. An entry whose key differs or whose hash does not match is recomputed and rewritten,
never used. Gradings that need the same entry at once share `KEY.lock` (`fcntl.flock`): they read it side by side
under a shared lock; one that finds nothing takes the lock alone, trains and writes, while the others wait and then
load, so one GPU never holds two copies of the judge's eager training.

The store is the judge's alone: the grading plugin hides its directory from every box (bubblewrap mounts an empty
tmpfs over it), and does not use it at all when the submission runs unboxed, where it could read or rewrite it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from grader.puzzle_c.run import CRun
    from grader.puzzle_c.training import TrainRecord

FORMAT = 1  # the layout of an entry; a change makes every older entry stale
GRADER_ROOT = Path(__file__).resolve().parents[1]
ENV = "GRADER_ORACLE_STORE"  # the default directory, when set


def default_directory() -> Path:
    """`$GRADER_ORACLE_STORE`, else `$XDG_CACHE_HOME/unsloth-puzzle-grader/c-oracles` (`~/.cache` by default)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "unsloth-puzzle-grader" / "c-oracles"


def grader_digest() -> str:
    """SHA-256 over the grader package's Python sources (paths and contents): any change to the grader's code is a
    new key."""
    digest = hashlib.sha256()
    for path in sorted(GRADER_ROOT.rglob("*.py")):
        digest.update(str(path.relative_to(GRADER_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def key(run: CRun, seed: int) -> dict[str, Any]:
    """Everything the oracle and the noise floor depend on, for `run`'s setting and `seed`: the machine and library
    versions as the scorecard records them (`grader.scoring.environment.describe`), the setting, the grader's code."""
    from grader.scoring import environment

    return {"format": FORMAT, "seed": seed, "environment": environment.describe(), "spec": asdict(run.spec),
            "dtype": str(run.dtype), "schedule": run.schedule.describe(), "grader": grader_digest()}


def _name(entry_key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entry_key, sort_keys=True).encode()).hexdigest()[:32]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


class OracleStore:
    """One store directory (`default_directory()` unless named)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def turn(self, entry_key: dict[str, Any], waiting: Callable[[], None], *, shared: bool = False) -> Iterator[None]:
        """Hold the entry's lock, exclusive (to train and write it) or `shared` (to read it, beside other readers):
        calls `waiting()` once if another grading holds it against us, then blocks until it is free."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        with open(self.directory / f"{_name(entry_key)}.lock", "a") as lock:
            try:
                fcntl.flock(lock, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                waiting()
                fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self, entry_key: dict[str, Any]) -> tuple[TrainRecord, TrainRecord, float] | str:
        """The stored oracle, noise floor and oracle seconds for `entry_key`; else why not (missing, stale, altered)."""
        import torch

        from grader.puzzle_c.training import TrainRecord

        name = _name(entry_key)
        meta_path, data_path = self.directory / f"{name}.json", self.directory / f"{name}.pt"
        if not meta_path.exists() or not data_path.exists():
            return "no stored oracle for this key"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            return f"the stored oracle's description is unreadable ({exc})"
        if meta.get("key") != entry_key:
            return "the stored oracle was made for another key"
        if meta.get("sha256") != _file_digest(data_path):
            return "the stored oracle does not match its recorded SHA-256 (altered or cut short)"
        try:
            data = torch.load(data_path, weights_only=True)
            return (TrainRecord.from_data(data["eager"]), TrainRecord.from_data(data["floor"]),
                    float(data["reference_s"]))
        except Exception as exc:  # a file that hashes right but does not load: the store's own fault, recompute
            return f"the stored oracle does not load ({type(exc).__name__}: {exc})"

    def save(self, entry_key: dict[str, Any], eager: TrainRecord, floor: TrainRecord, reference_s: float) -> None:
        """Write the entry for `entry_key` (data first, then its description with the data's hash; both atomically)."""
        import torch

        from grader.box.wire import plain

        name = _name(entry_key)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_path, meta_path = self.directory / f"{name}.pt", self.directory / f"{name}.json"
        tmp = data_path.with_suffix(".pt.tmp")
        torch.save({"eager": plain(eager), "floor": plain(floor), "reference_s": reference_s}, tmp)
        os.replace(tmp, data_path)
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"key": entry_key, "sha256": _file_digest(data_path)}, indent=1))
        os.replace(tmp, meta_path)

"""Requests and replies between the judge and the runner.

A message is a file in the exchange directory, announced by one JSON line on a pipe (`{"n": 7}`: the file is
`req-7.pt` or `rep-7.pt`). Files suit every size and device: torch writes CUDA tensors through the host, and the
pipe carries a few bytes.

**Requests** (judge -> runner) are trusted by the runner: a task name and pickled arguments (a bitsandbytes
`QuantState`, an `nn.Linear`, the grader's losses), with every tensor in them sent as a *mirror*: the first
time the judge sends a tensor, its data goes along and the runner keeps its copy under a handle; later requests
send only the handle, unless the judge changed the tensor in place since (its version counter moved), and then
the new data is copied *into the runner's copy, in place*. So the runner sees what an in-process caller would
see: the same tensor objects, at the same addresses, rewritten in place (a cache keyed on a pointer goes stale
there as it would in the caller). Tensor subclasses keep their class and attributes (`Params4bit.quant_state`).

**Replies** (runner -> judge) are not trusted by the judge: they are loaded with `torch.load(weights_only=True)`
(plain containers, numbers, strings, dtypes and tensors only: no object the submission could make run code in
the judge), after a size check.
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
import io
import json
import os
import pickle
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MAX_REPLY_BYTES = 32 * 2**30  # a reply larger than this is refused unread (a flood, not an answer)


class ProtocolError(RuntimeError):
    """A message that does not follow the wire's format (from a runner: the submission's doing)."""


def request_path(exchange: Path, n: int) -> Path:
    """Where request `n` is written."""
    return exchange / f"req-{n}.pt"


def reply_path(exchange: Path, n: int) -> Path:
    """Where reply `n` is written."""
    return exchange / f"rep-{n}.pt"


def header(n: int) -> bytes:
    """The pipe's announcement of message `n`."""
    return (json.dumps({"n": n}) + "\n").encode()


def progress_line(text: str) -> bytes:
    """A progress line from the runner (a long step begun or done), for the judge to show."""
    return (json.dumps({"progress": text[:500]}) + "\n").encode()


def parse_header(line: bytes) -> int | str:
    """The message number of an announcement, or the text of a progress line; ProtocolError for anything else."""
    try:
        message = json.loads(line.decode())
        value = message["n"] if "n" in message else message["progress"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ProtocolError(f"not an announcement: {line[:200]!r}") from None
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        raise ProtocolError(f"not an announcement: {line[:200]!r}")
    return value


# ---------------------------------------------------------------- the judge's side


@dataclass
class _Sent:
    handle: int
    version: int
    ptr: int
    layout: tuple[Any, ...]


def _layout(t: torch.Tensor) -> tuple[Any, ...]:
    return tuple(t.shape), t.stride(), t.dtype, t.device, t.storage_offset()


def _class_path(cls: type) -> tuple[str, str] | None:
    return None if cls is torch.Tensor else (cls.__module__, cls.__qualname__)


class Mirrors:
    """The tensors the judge has sent, by identity: which handle each has in the runner and which version of it
    the runner holds. A tensor the judge frees is released in the runner with the next request."""

    def __init__(self) -> None:
        self._sent: dict[int, _Sent] = {}
        self._next = 0
        self._released: list[int] = []

    def _dropped(self, key: int, handle: int) -> None:
        entry = self._sent.get(key)
        if entry is not None and entry.handle == handle:
            del self._sent[key]
        self._released.append(handle)

    def reference(self, t: torch.Tensor) -> tuple[int, bool]:
        """(handle, whether the runner needs the data now) for sending `t`."""
        entry = self._sent.get(id(t))
        if entry is not None and entry.version == t._version and entry.ptr == t.data_ptr() \
                and entry.layout == _layout(t):
            return entry.handle, False
        if entry is None:
            self._next += 1
            entry = _Sent(self._next, 0, 0, ())
            weakref.finalize(t, self._dropped, id(t), entry.handle)
            self._sent[id(t)] = entry
        entry.version, entry.ptr, entry.layout = t._version, t.data_ptr(), _layout(t)
        return entry.handle, True

    def forget(self, t: torch.Tensor) -> None:
        """Send `t`'s data again next time (the runner's copy is no longer the judge's: the submission wrote it)."""
        entry = self._sent.get(id(t))
        if entry is not None:
            entry.version = -1

    def pack(self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any], path: Path) -> None:
        """Write the request to run `task(*args, **kwargs)` at `path`."""
        tensors: dict[int, torch.Tensor] = {}
        buf = io.BytesIO()
        _MirroringPickler(buf, self, tensors).dump((args, kwargs))
        released, self._released = self._released, []
        torch.save({"task": task, "args": buf.getvalue(), "tensors": tensors, "release": released}, path)


class _MirroringPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, mirrors: Mirrors, tensors: dict[int, torch.Tensor]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.mirrors, self.tensors = mirrors, tensors

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, torch.Tensor):
            return NotImplemented
        handle, fresh = self.mirrors.reference(obj)
        key = None
        if fresh:
            key = len(self.tensors)
            self.tensors[key] = obj.detach().as_subclass(torch.Tensor)
        state = dict(vars(obj)) if type(obj) not in (torch.Tensor, torch.nn.Parameter) else None
        return _mirror, (handle, key, _class_path(type(obj)), obj.requires_grad), state, None, None, _set_state


def load_reply(path: Path) -> Any:
    """A reply as plain data; ProtocolError when it is too large, not a regular file, or holds anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ProtocolError(f"no readable reply at {path.name}: {exc}") from None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_REPLY_BYTES:
            raise ProtocolError(f"the reply holds {size} bytes, more than the {MAX_REPLY_BYTES} allowed")
        try:
            return torch.load(fh, weights_only=True)
        except Exception as exc:  # anything but plain data is refused unread
            raise ProtocolError(f"the reply is not plain data: {type(exc).__name__}: {str(exc)[:300]}") from None


# ---------------------------------------------------------------- the runner's side

_TABLE: contextvars.ContextVar[tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]] = \
    contextvars.ContextVar("grader_box_mirrors")


def _mirror(handle: int, key: int | None, cls: tuple[str, str] | None, requires_grad: bool) -> torch.Tensor:
    """Unpickling a tensor reference: the runner's copy under `handle`, created or rewritten in place."""
    mirrors, incoming = _TABLE.get()
    known = mirrors.get(handle)
    if key is None:
        if known is None:
            raise ProtocolError(f"tensor handle {handle} is not known here")
        return known
    data = incoming[key]
    if known is not None and (known.shape, known.dtype, known.device) == (data.shape, data.dtype, data.device):
        with torch.no_grad():
            known.copy_(data)
        return known
    data = data.clone()  # storage of its own, resizable, as a caller's tensor is (a loaded one may be neither)
    if cls is None:
        made = data
    elif cls == ("torch.nn.parameter", "Parameter"):
        made = torch.nn.Parameter(data, requires_grad=requires_grad)
    else:
        made = data.as_subclass(getattr(importlib.import_module(cls[0]), cls[1]))
    if made.requires_grad != requires_grad and made.is_leaf:
        made.requires_grad_(requires_grad)
    mirrors[handle] = made
    return made


def _set_state(obj: torch.Tensor, state: dict[str, Any]) -> None:
    obj.__dict__.update(state)


class MirrorTable:
    """The runner's copies of the judge's tensors, by handle."""

    def __init__(self) -> None:
        self.mirrors: dict[int, torch.Tensor] = {}

    def unpack(self, path: Path) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """Read the request at `path`: (task, args, kwargs), tensors bound to their mirrors."""
        message = torch.load(path, weights_only=True)
        for handle in message["release"]:
            self.mirrors.pop(handle, None)
        token = _TABLE.set((self.mirrors, message["tensors"]))
        try:
            args, kwargs = pickle.loads(message["args"])
        finally:
            _TABLE.reset(token)
        return message["task"], args, kwargs


def plain(value: Any, *, copy: bool = False) -> Any:
    """`value` as the plain data a reply may hold: dataclasses as dicts, sets as sorted lists, str and number
    subclasses (torch's version string, numpy scalars) as their base type, tensors as plain detached tensors (with
    `copy`, each with a storage of its own); TypeError for anything else (a task's bug, said at once rather than
    refused by the judge)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        t = value.detach().as_subclass(torch.Tensor)
        return t.clone() if copy else t
    if isinstance(value, (torch.dtype, torch.device)):
        return value
    if isinstance(value, torch.Size):
        return tuple(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name), copy=copy) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {plain(k): plain(v, copy=copy) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain(v, copy=copy) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return plain(value.item())
    raise TypeError(f"a reply cannot hold a {type(value).__module__}.{type(value).__qualname__}")


def save_reply(value: Any, path: Path) -> None:
    """Write a reply at `path`, as `plain` data (tensors that view one storage as different types, which torch
    cannot save together, as copies)."""
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(plain(value), tmp)
    except RuntimeError as exc:
        if "view the same data as different types" not in str(exc):
            raise
        torch.save(plain(value, copy=True), tmp)
    os.replace(tmp, path)

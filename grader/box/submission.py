"""Loading a submission (a .py file, a directory or an importable module) and checking its entry points.

Runs in the runner process only (`grader.box.runner`): the judge never imports submission code. What the judge
learns of it is `Loaded.describe()`: whether it loaded, and each puzzle's entry point or why it is unusable.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from grader.scoring.rubric import PUZZLES

DEFAULT_SUBMISSION = "solutions"

# Parameters each entry point must accept, in order (later ones may have defaults).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "A": ("weight", "quant_state"),
    "C": ("model",),
    "D": ("X", "linear", "labels", "forward_function", "chunk_size"),
}

# Context managers entered around every call of an entry point and around the import, each given what is
# called ("its import", "a call of dequantize_nf4()"): the runner registers the one that undoes changed settings.
CALL_GUARDS: list[Callable[[str], contextlib.AbstractContextManager[None]]] = []


def _guarded_call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with contextlib.ExitStack() as stack:
        for guard in CALL_GUARDS:
            stack.enter_context(guard(what))
        return fn(*args, **kwargs)


def _guarded(puzzle: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with the call guards around each call (not while torch.compile traces it: nothing runs then)."""
    what = f"a call of {PUZZLES[puzzle].entry_point}()"

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        import torch

        if torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        return _guarded_call(what, fn, *args, **kwargs)

    call.grader_unguarded = fn  # type: ignore[attr-defined]
    return call


def unguarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An entry point without the call guards: timing loops measure the submission, not the grader's checks."""
    return getattr(fn, "grader_unguarded", fn)


class ContractError(Exception):
    """The submission breaks the contract; the message names the puzzle, entry point and what was expected."""


def display_name(spec: str) -> str:
    """A short display name for scorecards."""
    return Path(spec).stem if spec.endswith(".py") else spec


@dataclass
class Loaded:
    """A loaded submission. `module` is None when loading failed; `load_error` then says why."""

    spec: str
    module: ModuleType | None
    load_error: str | None = None
    files: tuple[str, ...] = ()  # the file or package directory the code came from (to tell its frames apart)
    _entries: dict[str, Callable[..., Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A short display name for scorecards."""
        return display_name(self.spec)

    def provides(self, puzzle: str) -> bool:
        """Whether the submission defines the puzzle's entry point (False if it failed to load)."""
        if self.module is None:
            return False
        try:
            getattr(self.module, PUZZLES[puzzle].entry_point)
        except AttributeError:
            return False
        except Exception:  # present but broken on import: entry_point() reports why
            return True
        return True

    def entry_point(self, puzzle: str) -> Callable[..., Any]:
        """The puzzle's entry point, checked against the contract, with the call guards; ContractError otherwise."""
        if puzzle in self._entries:
            return self._entries[puzzle]
        name = PUZZLES[puzzle].entry_point
        where = f"puzzle {puzzle}: {self.name}.{name}"
        if self.module is None:
            raise ContractError(f"{where}: the submission could not be loaded:\n{self.load_error}")
        try:
            fn = _guarded_call(f"importing {name}", getattr, self.module, name)
        except Exception as exc:  # a lazy attribute that fails to import
            raise ContractError(f"{where}: importing it failed: {type(exc).__name__}: {exc}") from exc
        if not callable(fn):
            raise ContractError(f"{where}: expected a function, found {type(fn).__name__}")
        _check_signature(where, fn, SIGNATURES[puzzle])
        self._entries[puzzle] = _guarded(puzzle, fn)
        return self._entries[puzzle]

    def describe(self) -> dict[str, Any]:
        """What the judge may know: loaded or why not, each puzzle's entry point (present, contract error), and
        the public callables found (for a submission that provides none)."""
        entries = {}
        for puzzle in PUZZLES:
            present, error = self.provides(puzzle), None
            if present:
                try:
                    self.entry_point(puzzle)
                except ContractError as exc:
                    error = str(exc)
            entries[puzzle] = {"present": present, "error": error}
        found = [] if self.module is None else sorted(
            n for n in dir(self.module) if not n.startswith("_") and callable(getattr(self.module, n, None)))
        return {"name": self.name, "loaded": self.module is not None, "load_error": self.load_error,
                "entries": entries, "callables": found}


def _check_signature(where: str, fn: Callable[..., Any], params: tuple[str, ...]) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C functions: nothing to check
    try:
        sig.bind(*params[:1], *([None] * (len(params) - 1)))
    except TypeError as exc:
        raise ContractError(f"{where}{sig}: cannot be called as {where.split('.')[-1]}({', '.join(params)}): {exc}")


def load(spec: str, root: Path | None = None) -> Loaded:
    """Load `spec` (path to a .py file or package directory, or a module name); never raises."""
    try:
        module = _guarded_call("its import", _import, spec, root or Path.cwd())
    except ContractError as exc:
        return Loaded(spec, None, str(exc))
    except BaseException as exc:  # SyntaxError, ImportError, SystemExit from a submission's top level
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return Loaded(spec, None, "".join(tb[-6:]).rstrip())
    origin = Path(getattr(module, "__file__", "") or "")
    files = (str(origin.parent),) if origin.name == "__init__.py" else (str(origin),) if str(origin) else ()
    return Loaded(spec, module, files=files)


def _import(spec: str, root: Path) -> ModuleType:
    path = Path(spec) if Path(spec).is_absolute() else root / spec
    looks_like_path = spec.endswith(".py") or "/" in spec or "\\" in spec or path.exists()
    if not looks_like_path:
        return importlib.import_module(spec)
    if not path.exists():
        raise ContractError(f"submission {spec!r} does not exist (looked at {path})")
    if path.is_dir():
        init = path / "__init__.py"
        if not init.exists():
            raise ContractError(f"submission directory {spec!r} has no __init__.py; point at a .py file instead")
        path = init
    # A unique module name, registered in sys.modules: dynamo and pickling need an importable module.
    modname = "grader_submission_" + re.sub(r"\W", "_", str(path.resolve().with_suffix("")))[-80:]
    if modname in sys.modules:
        return sys.modules[modname]
    is_pkg = path.name == "__init__.py"
    file_spec = importlib.util.spec_from_file_location(
        modname, path, submodule_search_locations=[str(path.parent)] if is_pkg else None)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[modname] = module
    try:
        file_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[modname]
        raise
    return module

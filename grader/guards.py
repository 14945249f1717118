"""Global-state guards: what a submission changes outside its own output is detected, reported and undone.

A pristine snapshot is taken before the first grader test sets up (so before the submission is imported).
After every grader test, the live state is compared with it:

- **Integrity** (the functions the grader measures and compares with: timers, device synchronisation,
  CUDA events, public torch / torch.nn.functional / Tensor callables, bitsandbytes' functional API,
  pytest-benchmark's and the grader's own modules). A replaced one is tampering: it is put back and the
  test that saw it fails in teardown (a test that fails in teardown gives its criterion no value).
- **Settings** (default dtype, matmul precision, deterministic algorithms, grad mode, thread count,
  `torch.backends` flags). A change made by a call into the submission (its import, an entry point) is
  undone when the call returns and reported on the puzzle's `global_state_untouched` criterion, so the
  grader's own tensors and oracles never run under it and the output is judged on its merits.
- **Compiler config** (dynamo and inductor). Configuring the compiler is the submission's own business
  (puzzle C's task), so a change is left in place while its puzzle runs and reported.

Each puzzle runs in its own world: when the next test belongs to another puzzle, the settings of the
puzzle being left are saved and the next puzzle's (pristine on first entry) are put in place, before any of
that test's fixtures run. Nothing leaks from one puzzle into another, in one process or under xdist.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from grader.results import ALSO
from grader.runtime import choose_device, criterion_of
from grader.rubric import PUZZLES
from grader.submission import CALL_GUARDS

REPORT_CRITERION = "global_state_untouched"

# Modules whose public callables (and the callables of classes they define) must keep their identity.
_WATCHED_MODULES = ("time", "torch", "torch.nn.functional", "torch.cuda", "torch.cuda.streams", "torch.testing",
                    "torch.autograd", "bitsandbytes.functional", "pytest_benchmark.fixture",
                    "pytest_benchmark.timers", "pytest_benchmark.stats", "pytest_benchmark.utils")
_WATCHED_PREFIXES = ("grader.",)


# Attributes whose identity legitimately follows a setting: torch.Storage is the default dtype's storage class.
_FOLLOW_SETTINGS = {("torch", "Storage")}


def _is_watched(name: str) -> bool:
    return name in _WATCHED_MODULES or name.startswith(_WATCHED_PREFIXES)


def _callables(owner: Any) -> dict[str, Any]:
    """Public callables (functions, builtins, methods, classes) held in `owner`'s namespace."""
    out = {}
    for name, value in list(vars(owner).items()):
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if callable(value) and not isinstance(value, ModuleType):
            out[name] = value
    return out


def _owners() -> dict[str, Any]:
    """Every watched namespace that is loaded now: modules, their own classes, and torch's tensor classes."""
    import torch

    owners: dict[str, Any] = {"torch.Tensor": torch.Tensor, "torch._C.TensorBase": torch._C.TensorBase}
    for modname, module in list(sys.modules.items()):
        if module is None or not _is_watched(modname):
            continue
        owners[modname] = module
        for name, value in list(vars(module).items()):
            if isinstance(value, type) and getattr(value, "__module__", None) == modname and not name.startswith("_"):
                owners[f"{modname}.{name}"] = value
    owners["torch.cuda.Event"] = torch.cuda.Event
    owners["torch.cuda.Stream"] = torch.cuda.Stream
    return owners


@dataclass(frozen=True)
class _Setting:
    """A global setting: how to read it and how to put a value back."""

    name: str
    get: Callable[[], Any]
    set: Callable[[Any], None]


def _attr(path: str) -> _Setting:
    owner_path, _, attr = path.rpartition(".")

    def owner() -> Any:
        obj: Any = sys.modules["torch"]
        for part in owner_path.split(".")[1:]:
            obj = getattr(obj, part)
        return obj

    return _Setting(path, lambda: getattr(owner(), attr), lambda v: setattr(owner(), attr, v))


def _settings() -> list[_Setting]:
    import torch

    b = torch.backends.cuda
    sdp = [("flash", b.flash_sdp_enabled, b.enable_flash_sdp), ("mem_efficient", b.mem_efficient_sdp_enabled,
           b.enable_mem_efficient_sdp), ("math", b.math_sdp_enabled, b.enable_math_sdp)]
    return [
        _Setting("torch.get_default_dtype()", torch.get_default_dtype, torch.set_default_dtype),
        _Setting("torch.get_float32_matmul_precision()", torch.get_float32_matmul_precision,
                 torch.set_float32_matmul_precision),
        _Setting("deterministic algorithms (enabled, warn_only)",
                 lambda: (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled()),
                 lambda v: torch.use_deterministic_algorithms(v[0], warn_only=v[1])),
        _Setting("torch.is_grad_enabled()", torch.is_grad_enabled, torch.set_grad_enabled),
        _Setting("torch.get_num_threads()", torch.get_num_threads, torch.set_num_threads),
        *(_attr(f"torch.backends.{p}") for p in (
            "cuda.matmul.allow_tf32", "cuda.matmul.allow_fp16_reduced_precision_reduction",
            "cuda.matmul.allow_bf16_reduced_precision_reduction", "cudnn.enabled", "cudnn.benchmark",
            "cudnn.deterministic", "cudnn.allow_tf32")),
        *(_Setting(f"torch.backends.cuda.{n}_sdp_enabled()", g, s) for n, g, s in sdp),
    ]


_CONFIG_MODULES = ("torch._dynamo.config", "torch._inductor.config")


@dataclass
class Snapshot:
    """Identities of watched callables and values of settings and compiler configs, at one moment."""

    identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Snapshot:
        """The state now (compiler configs only for those already imported)."""
        snap = cls({name: _callables(owner) for name, owner in _owners().items()},
                   {s.name: s.get() for s in _settings()})
        for modname in _CONFIG_MODULES:
            if modname in sys.modules:
                snap.configs[modname] = sys.modules[modname].get_config_copy()
        return snap

    def adopt_new(self) -> None:
        """Add namespaces first loaded since the snapshot, as they are now (the best that can be known)."""
        for name, owner in _owners().items():
            self.identities.setdefault(name, _callables(owner))
        for modname in _CONFIG_MODULES:
            if modname in sys.modules and modname not in self.configs:
                self.configs[modname] = _config_defaults(sys.modules[modname])

    def replaced(self) -> list[tuple[str, str, Any, Any]]:
        """(owner, name, original, now) for every watched callable that is no longer the original."""
        owners = _owners()
        out = []
        for oname, originals in self.identities.items():
            owner = owners.get(oname)
            if owner is None:
                continue
            space = vars(owner)
            for name, original in originals.items():
                if (oname, name) in _FOLLOW_SETTINGS:
                    continue
                now = space.get(name)
                if isinstance(now, (staticmethod, classmethod)):
                    now = now.__func__
                if now is not original:
                    out.append((oname, name, original, now))
        return out

    def restore_identities(self, replaced: list[tuple[str, str, Any, Any]]) -> None:
        """Put every replaced callable back."""
        owners = _owners()
        for oname, name, original, _ in replaced:
            owner = owners[oname]
            current = vars(owner).get(name)
            if isinstance(current, staticmethod):
                original = staticmethod(original)
            elif isinstance(current, classmethod):
                original = classmethod(original)
            setattr(owner, name, original)

    def setting_changes(self) -> dict[str, tuple[Any, Any]]:
        """name -> (pristine, now) for every setting and config entry that differs."""
        out = {}
        for s in _settings():
            now = s.get()
            if now != self.settings[s.name]:
                out[s.name] = (self.settings[s.name], now)
        for modname in _CONFIG_MODULES:
            module = sys.modules.get(modname)
            if module is None or modname not in self.configs:
                continue
            for key, now in module.get_config_copy().items():
                before = self.configs[modname].get(key, now)
                if not _same(before, now):
                    out[f"{modname}.{key}"] = (before, now)
        return out

    def settings_now(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The live settings and configs, to be saved as a puzzle's world."""
        configs = {m: sys.modules[m].get_config_copy() for m in _CONFIG_MODULES if m in sys.modules}
        return {s.name: s.get() for s in _settings()}, configs

    def apply_settings(self, settings: dict[str, Any], configs: dict[str, dict[str, Any]]) -> None:
        """Put `settings` and `configs` in place (keys absent from them keep the pristine value)."""
        for s in _settings():
            value = settings.get(s.name, self.settings[s.name])
            if s.get() != value:
                s.set(value)
        for modname in _CONFIG_MODULES:
            module = sys.modules.get(modname)
            if module is None or modname not in self.configs:
                continue
            wanted = {**self.configs[modname], **configs.get(modname, {})}
            for key, now in module.get_config_copy().items():
                if key in wanted and not _same(wanted[key], now):
                    setattr(module, key, wanted[key])


def _config_defaults(module: Any) -> dict[str, Any]:
    """A config module first imported after the pristine snapshot: its values before anyone set them (an entry
    set in code reads as its declared default; environment overrides stay, they are not the submission's)."""
    from torch.utils._config_module import _UNSET_SENTINEL

    out = {}
    for key, value in module.get_config_copy().items():
        entry = module._config.get(key)
        overridden = entry is not None and entry.user_override.get() is not _UNSET_SENTINEL
        out[key] = entry.default if overridden else value
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # values without a usable ==
        return a is b


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    module = getattr(obj, "__module__", None) or ""
    code = getattr(obj, "__code__", None)
    where = f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})" if code is not None else ""
    return f"{module + '.' if module else ''}{name}{where}"


class Guard:
    """The pytest plugin object: puzzle worlds, the pristine snapshot, and the check after every test."""

    def __init__(self) -> None:
        self.pristine: Snapshot | None = None
        self.current: str | None = None
        self.worlds: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
        self.reported: dict[str, set[str]] = {}
        self.undone: list[str] = []  # settings changes undone after a call, not yet reported

    @contextlib.contextmanager
    def around_call(self, puzzle: str | None) -> Iterator[None]:
        """Around one call into the submission: settings changed by it are noted and put back."""
        before = {s.name: s.get() for s in _settings()}
        try:
            yield
        finally:
            what = "its import" if puzzle is None else f"a call of {PUZZLES[puzzle].entry_point}()"
            changed = [(s, s.get()) for s in _settings()]  # all read first: some settings move together
            changed = [(s, now) for s, now in changed if not _same(now, before[s.name])]
            for s, now in changed:
                self.undone.append(f"{s.name} changed from {before[s.name]!r} to {now!r} by {what} "
                                   "(undone when it returned)")
            for s, _ in changed:
                s.set(before[s.name])

    @staticmethod
    def _puzzle(item: pytest.Item) -> str | None:
        crit = criterion_of(item)
        return crit[0] if crit is not None else None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        letter = self._puzzle(item)
        if letter is not None:
            if self.pristine is None:
                choose_device()  # Triton's interpreter must be chosen before anything defines a kernel
                # Importing dynamo rewraps torch functions (torch.manual_seed); it must happen before the snapshot.
                import torch._dynamo  # noqa: F401
                import torch._inductor.config  # noqa: F401

                self.pristine = Snapshot.take()
            if letter != self.current:
                if self.current is not None:
                    self.worlds[self.current] = self.pristine.settings_now()
                self.pristine.apply_settings(*self.worlds.get(letter, ({}, {})))
                self.current = letter
        return (yield)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        result = yield
        letter = self._puzzle(item)
        if letter is None or self.pristine is None:
            return result
        self.pristine.adopt_new()
        replaced = self.pristine.replaced()
        changes = self.pristine.setting_changes()
        who = f"puzzle {letter} ({PUZZLES[letter].entry_point})"
        lines = [f"{o}.{n} was replaced by {_describe(now) if now is not None else 'nothing (deleted)'}"
                 for o, n, _, now in replaced]
        lines += [f"{name} changed from {before!r} to {now!r}" for name, (before, now) in changes.items()]
        lines += list(dict.fromkeys(self.undone))
        self.undone.clear()
        seen = self.reported.setdefault(letter, set())
        fresh = [line for line in lines if line not in seen]
        seen.update(fresh)
        criterion = f"{letter}.{REPORT_CRITERION}"
        if fresh:
            detail = (f"{who} changed global state: " + "; ".join(fresh) + " (settings are undone when the call "
                      "returns; compiler config stays while this puzzle runs and is undone before the next puzzle; "
                      "replaced functions are put back at once)")
            item.user_properties.append((ALSO, json.dumps([criterion, "failed", detail])))
        else:
            item.user_properties.append((ALSO, json.dumps(
                [criterion, "passed", "timers, torch functions, default dtype, backend flags and compiler config "
                                      "checked after every test: unchanged"])))
        if replaced:
            self.pristine.restore_identities(replaced)
            pytest.fail(f"{who} tampered with functions the grader measures or compares with: "
                        + "; ".join(lines[:len(replaced)]) + ". They were put back; a test that sees tampering "
                        "scores nothing.", pytrace=False)
        return result


def pytest_configure(config: pytest.Config) -> None:
    guard = Guard()
    config.pluginmanager.register(guard, "grader-guard")
    CALL_GUARDS.append(guard.around_call)


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.pluginmanager.get_plugin("grader-guard")
    if guard is not None and guard.around_call in CALL_GUARDS:
        CALL_GUARDS.remove(guard.around_call)

"""The runner's watch over its own global state: what the submission changes besides its output.

A pristine snapshot is taken before the submission is imported. After every task the runner compares:

- **Integrity**: the functions the grader measures and compares with in this process (timers, device
  synchronisation, CUDA events, public torch / torch.nn.functional / Tensor callables, bitsandbytes' functional
  API, every function and method of the grader's own modules). A callable replaced by another object, or one
  whose code was swapped in place (`f.__code__ = ...`, defaults rewritten), is tampering: it is put back and the
  task's reply says so (the judge fails the test that saw it).
- **Settings**: default dtype, matmul precision, deterministic algorithms, grad mode, thread count,
  `torch.backends` flags. A change made by a call into the submission is undone when the call returns and
  reported, so the grader's own code in the same process never runs under it.
- **Compiler config** (dynamo and inductor): configuring the compiler is puzzle C's task, so a change stays (each
  puzzle has a runner of its own) and is reported.

None of this is the verdict's line of defence: the judge runs in another process and checks the outputs itself.
It is the second line, for measurements that must happen beside the submission (launches, timings, dynamo's
counters), and it makes a leaky submission visible on `global_state_untouched`.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from types import FunctionType, ModuleType
from typing import Any, Callable, Iterator

# Modules whose public callables (and the callables of classes they define) must keep their identity and code.
_WATCHED_MODULES = ("time", "torch", "torch.nn.functional", "torch.cuda", "torch.cuda.streams", "torch.testing",
                    "torch.autograd", "bitsandbytes.functional")
# Modules watched whole: private functions too (the runner's own code and the measurements it makes).
_WATCHED_PREFIXES = ("grader.",)
# Attributes whose identity legitimately follows a setting: torch.Storage is the default dtype's storage class.
_FOLLOW_SETTINGS = {("torch", "Storage")}
_CONFIG_MODULES = ("torch._dynamo.config", "torch._inductor.config")


def _is_watched(name: str) -> bool:
    return name in _WATCHED_MODULES or name.startswith(_WATCHED_PREFIXES)


def _callables(owner: Any, *, private: bool) -> dict[str, Any]:
    """Callables (functions, builtins, methods, classes) and properties held in `owner`'s namespace."""
    out = {}
    for name, value in list(vars(owner).items()):
        if not private and name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if (callable(value) or isinstance(value, property)) and not isinstance(value, ModuleType):
            out[name] = value
    return out


def _owners() -> dict[str, tuple[Any, bool]]:
    """Every watched namespace loaded now, with whether its private names are watched too."""
    import torch

    owners: dict[str, tuple[Any, bool]] = {"torch.Tensor": (torch.Tensor, False),
                                           "torch._C.TensorBase": (torch._C.TensorBase, False),
                                           "torch.cuda.Event": (torch.cuda.Event, False),
                                           "torch.cuda.Stream": (torch.cuda.Stream, False)}
    for modname, module in list(sys.modules.items()):
        if module is None or not _is_watched(modname):
            continue
        private = modname.startswith(_WATCHED_PREFIXES)
        owners[modname] = (module, private)
        for name, value in list(vars(module).items()):
            if isinstance(value, type) and getattr(value, "__module__", None) == modname and (
                    private or not name.startswith("_")):
                owners[f"{modname}.{name}"] = (value, private)
    return owners


def _code_of(value: Any) -> tuple[Any, ...] | None:
    """What a swap in place changes: a Python function's code, defaults and keyword defaults (of a property: its
    getter's)."""
    fn = value.fget if isinstance(value, property) else value
    if isinstance(fn, FunctionType):
        return fn.__code__, fn.__defaults__, fn.__kwdefaults__
    return None


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


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # values without a usable ==
        return a is b


def describe(obj: Any) -> str:
    """A callable as `module.qualname (file:line)`, for reports."""
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    module = getattr(obj, "__module__", None) or ""
    code = getattr(obj, "__code__", None)
    where = f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})" if code is not None else ""
    return f"{module + '.' if module else ''}{name}{where}"


@dataclass
class Tampering:
    """A watched callable that is no longer what it was: replaced (`now` is another object) or its code swapped."""

    owner: str
    name: str
    original: Any
    now: Any
    code: tuple[Any, ...] | None  # the original's code, defaults and kwdefaults, for a swap

    def __str__(self) -> str:
        if self.now is self.original:
            code = (self.now.fget if isinstance(self.now, property) else self.now).__code__
            return (f"{self.owner}.{self.name} had its code swapped in place (its code now comes from "
                    f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})")
        return f"{self.owner}.{self.name} was replaced by {describe(self.now) if self.now is not None else 'nothing (deleted)'}"


@dataclass
class Snapshot:
    """Identities and code of watched callables, and values of settings and compiler configs, at one moment."""

    identities: dict[str, dict[str, tuple[Any, tuple[Any, ...] | None]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Snapshot:
        """The state now (compiler configs only for those already imported)."""
        snap = cls({name: {k: (v, _code_of(v)) for k, v in _callables(owner, private=private).items()}
                    for name, (owner, private) in _owners().items()},
                   {s.name: s.get() for s in _settings()})
        for modname in _CONFIG_MODULES:
            if modname in sys.modules:
                snap.configs[modname] = sys.modules[modname].get_config_copy()
        return snap

    def adopt_new(self) -> None:
        """Add namespaces first loaded since the snapshot, as they are now (the best that can be known)."""
        for name, (owner, private) in _owners().items():
            self.identities.setdefault(name, {k: (v, _code_of(v)) for k, v in _callables(owner, private=private).items()})

    def tampered(self) -> list[Tampering]:
        """Every watched callable that is no longer the original, or whose code is no longer the original's."""
        owners = _owners()
        out = []
        for oname, originals in self.identities.items():
            owner = owners.get(oname)
            if owner is None:
                continue
            space = vars(owner[0])
            for name, (original, code) in originals.items():
                if (oname, name) in _FOLLOW_SETTINGS:
                    continue
                now = space.get(name)
                if isinstance(now, (staticmethod, classmethod)):
                    now = now.__func__
                if now is not original or (code is not None and _code_of(now) != code):
                    out.append(Tampering(oname, name, original, now, code))
        return out

    def restore(self, tampered: list[Tampering]) -> None:
        """Put every replaced callable back, and every swapped code."""
        owners = _owners()
        for t in tampered:
            owner = owners[t.owner][0]
            if t.now is t.original and t.code is not None:
                fn = t.original.fget if isinstance(t.original, property) else t.original
                fn.__code__, fn.__defaults__, fn.__kwdefaults__ = t.code
                continue
            current = vars(owner).get(t.name)
            original = t.original
            if isinstance(current, staticmethod):
                original = staticmethod(original)
            elif isinstance(current, classmethod):
                original = classmethod(original)
            setattr(owner, t.name, original)
            if t.code is not None:  # the original itself may have been swapped before it was replaced
                fn = original.fget if isinstance(original, property) else getattr(original, "__func__", original)
                fn.__code__, fn.__defaults__, fn.__kwdefaults__ = t.code

    def config_changes(self) -> dict[str, tuple[Any, Any]]:
        """name -> (pristine, now) for every compiler config entry that differs."""
        out = {}
        for modname in _CONFIG_MODULES:
            module = sys.modules.get(modname)
            if module is None:
                continue
            before_all = self.configs.get(modname)
            if before_all is None:
                before_all = self.configs[modname] = _config_defaults(module)
            for key, now in module.get_config_copy().items():
                before = before_all.get(key, now)
                if not _same(before, now):
                    out[f"{modname}.{key}"] = (before, now)
        return out


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


class Watch:
    """The runner's guard: the pristine snapshot, settings undone after each call into the submission, and the
    report of each task (what changed, what was tampered with)."""

    def __init__(self) -> None:
        self.pristine = Snapshot.take()
        self.undone: list[str] = []  # settings changes undone after a call, not yet reported
        self.reported: set[str] = set()

    @contextlib.contextmanager
    def around_call(self, what: str) -> Iterator[None]:
        """Around one call into the submission (`what` names it): settings it changed are noted and put back."""
        before = {s.name: s.get() for s in _settings()}
        try:
            yield
        finally:
            changed = [(s, s.get()) for s in _settings()]  # all read first: some settings move together
            changed = [(s, now) for s, now in changed if not _same(now, before[s.name])]
            for s, now in changed:
                self.undone.append(f"{s.name} changed from {before[s.name]!r} to {now!r} by {what} "
                                   "(undone when it returned)")
            for s, _ in changed:
                s.set(before[s.name])

    def report(self) -> dict[str, list[str]]:
        """After a task: `changed` (new findings: settings undone, config left in place) and `tampered` (put
        back now). Settings changed outside any call (by the submission's threads, say) are undone here too."""
        self.pristine.adopt_new()
        tampered = self.pristine.tampered()
        lines = [f"{name} changed from {before!r} to {now!r}" for name, (before, now) in
                 self.pristine.config_changes().items()]
        for s in _settings():
            now = s.get()
            if not _same(now, self.pristine.settings[s.name]):
                lines.append(f"{s.name} changed from {self.pristine.settings[s.name]!r} to {now!r} (undone)")
                s.set(self.pristine.settings[s.name])
        lines += self.undone
        self.undone = []
        fresh = [line for line in dict.fromkeys(lines) if line not in self.reported]
        self.reported.update(fresh)
        said = [str(t) for t in tampered]  # before the originals are back
        if tampered:
            self.pristine.restore(tampered)
        return {"changed": fresh, "tampered": said}

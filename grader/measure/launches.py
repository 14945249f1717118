"""Which Triton kernels a call launches, with their compile-time arguments and (on a GPU) compiled code.

On a GPU, `CompiledKernel.launch_metadata`, which Triton calls on every launch of a compiled kernel
(through the JIT front end or straight through `compiled[grid](...)`), is wrapped to capture the kernel
(its TTIR shows inline asm and cache hints; its source recompiles for other targets), and Triton's
`launch_enter_hook` counts launches as well. Under the interpreter, `GridExecutor.__call__` is wrapped.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class Launch:
    """One Triton kernel launch."""

    name: str
    grid: Any
    constexprs: dict[str, Any] = field(default_factory=dict)
    signature: dict[str, str] = field(default_factory=dict)  # Triton types of the runtime arguments
    options: dict[str, Any] = field(default_factory=dict)  # num_warps, enable_fp_fusion, ...
    jit_fn: Any = None  # the Python function behind @triton.jit
    compiled: Any = None  # triton CompiledKernel (GPU only)

    def ttir(self) -> str | None:
        """The kernel's Triton IR as compiled for this device, or None under the interpreter."""
        if self.compiled is None:
            return None
        return self.compiled.asm.get("ttir")


@dataclass
class LaunchLog:
    """Every Triton launch seen inside a `record_launches()` block."""

    launches: list[Launch] = field(default_factory=list)
    in_launch: int = 0  # >0 while a kernel runs under the interpreter

    @property
    def names(self) -> list[str]:
        """Kernel names in launch order."""
        return [launch.name for launch in self.launches]


_ACTIVE: list[LaunchLog] = []
_POINTER = {"uint8": "*u8", "int8": "*i8", "int16": "*i16", "int32": "*i32", "int64": "*i64",
            "float16": "*fp16", "bfloat16": "*bf16", "float32": "*fp32", "float64": "*fp64", "bool": "*i1"}


def _describe(fn: Any, arg_names: list[str], constexpr_names: set[str], args: tuple, kwargs: dict) -> Launch:
    """A Launch from a kernel call's arguments: constexpr values, runtime argument types, options."""
    bound = dict(zip(arg_names, args))
    bound.update({k: v for k, v in kwargs.items() if k in arg_names})
    constexprs, signature = {}, {}
    for name in arg_names:
        value = bound.get(name)
        if name in constexpr_names or value is None:
            constexprs[name] = value
        elif hasattr(value, "dtype") and hasattr(value, "data_ptr"):
            signature[name] = _POINTER.get(str(value.dtype).removeprefix("torch."), "*i8")
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -2**31 <= value < 2**31 else "i64"
        else:
            signature[name] = "fp32"
    options = {k: v for k, v in kwargs.items() if k not in arg_names and k not in ("grid", "warmup")}
    return Launch(fn.__name__, None, constexprs, signature, options, fn)


def _record(launch: Launch) -> None:
    for log in _ACTIVE:
        log.launches.append(launch)


@contextlib.contextmanager
def record_launches() -> Iterator[LaunchLog]:
    """Record the Triton launches made inside the block (nests; patches are undone on exit)."""
    from triton.compiler.compiler import CompiledKernel
    from triton.runtime import interpreter

    log = LaunchLog()
    _ACTIVE.append(log)
    original_metadata = CompiledKernel.launch_metadata
    original_grid_call = interpreter.GridExecutor.__call__

    def launch_metadata(self, grid, stream, *args):
        _record(Launch(self.name, grid, jit_fn=getattr(getattr(self, "src", None), "fn", None), compiled=self))
        return original_metadata(self, grid, stream, *args)

    def grid_call(self, *args, **kwargs):
        # The executor holds the interpreter's rewrite of the kernel (its AST changed for emulation, so it no
        # longer compiles for a GPU); the function as written is the key the rewrite is cached under.
        written = next((fn for fn, rewritten in interpreter.InterpretedFunction.rewritten_fn.items()
                        if rewritten is self.fn), self.fn)
        launch = _describe(written, self.arg_names, set(self.constexprs), args, kwargs)
        launch.grid = self.grid
        _record(launch)
        for active in _ACTIVE:
            active.in_launch += 1
        try:
            return original_grid_call(self, *args, **kwargs)
        finally:
            for active in _ACTIVE:
                active.in_launch -= 1

    CompiledKernel.launch_metadata = launch_metadata
    interpreter.GridExecutor.__call__ = grid_call
    try:
        yield log
    finally:
        CompiledKernel.launch_metadata = original_metadata
        interpreter.GridExecutor.__call__ = original_grid_call
        _ACTIVE.remove(log)


INLINE_ASM = re.compile(r"tt\.elementwise_inline_asm")
# Eviction policies and cache modifiers on tt.load/tt.store, in the TTIR spellings of Triton 3.6 and 3.9.
CACHE_HINT = re.compile(r"(?:eviction_policy|evictionPolicy) = evict_(?:first|last)"
                        r"|(?:cache_modifier|cacheModifier) = (?:ca|cg|cs|cv|wb|wt)")


@contextlib.contextmanager
def _jit_helpers(namespaces: list[dict[str, Any]]) -> Iterator[None]:
    """Under the interpreter, `@triton.jit` helpers (the kernel's own, and Triton's `tl.interleave`,
    `tl.zeros_like`, `tl.cdiv`...) are interpreter objects that the compiler cannot call; inside the block
    each one found in `namespaces` (and in triton.language's modules) is a compilable JITFunction."""
    import sys

    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    spaces = namespaces + [vars(m) for name, m in list(sys.modules.items())
                           if m is not None and (name == "triton.language" or name.startswith("triton.language."))]
    swapped: list[tuple[dict[str, Any], str, Any]] = []
    for space in spaces:
        for key, value in list(space.items()):
            if isinstance(value, InterpretedFunction):
                swapped.append((space, key, value))
                space[key] = JITFunction(value.fn)
    try:
        yield
    finally:
        for space, key, value in swapped:
            space[key] = value


def compile_for(launch: Launch, capability: int) -> tuple[bool, str, str | None]:
    """Compile a launched kernel for `sm_<capability>` with its launch's arguments and options, without a GPU.

    Returns (ok, message, ttir).
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    keep = ("num_warps", "num_stages", "enable_fp_fusion")
    try:
        if launch.compiled is not None:  # a GPU launch: recompile its own source and options
            src = launch.compiled.src
            meta = launch.compiled.metadata
            options = {k: getattr(meta, k) for k in keep if hasattr(meta, k)}
        else:
            jf = launch.jit_fn if isinstance(launch.jit_fn, JITFunction) else JITFunction(launch.jit_fn)
            signature = {name: launch.signature.get(name, "constexpr") for name in jf.arg_names}
            src = ASTSource(jf, signature, constexprs=launch.constexprs)
            options = {k: v for k, v in launch.options.items() if k in keep}
        helpers = [] if launch.compiled is not None else [launch.jit_fn.__globals__]
        with _jit_helpers(helpers):
            compiled = triton.compile(src, target=GPUTarget("cuda", capability, 32), options=options)
        return True, f"compiles for sm_{capability}", compiled.asm.get("ttir")
    except Exception as exc:  # the compiler's own error text is the useful part
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        return False, f"does not compile for sm_{capability}: {type(exc).__name__}: {lines[-1] if lines else ''}", None

"""Make the Triton interpreter round bfloat16 as a GPU does, so a CPU verdict is the verdict a GPU would give.

The interpreter (TRITON_INTERPRET=1) stores bfloat16 as raw uint16 bit patterns and gets several
operations on them wrong (triton 3.9 and 3.6, `triton/runtime/interpreter.py`):

- a plain cast to bfloat16 (`x.to(tl.bfloat16)`, a store into a bfloat16 pointer) truncates, where a GPU's
  `cvt.rn.bf16.f32` rounds to nearest even: about half of all honest bf16 outputs end 1 ulp low;
- an explicit `fp_downcast_rounding="rtne"` rounds half up and loses the carry into the exponent
  (1.9999999 becomes 1.0);
- `tl.dot`, arithmetic and negation on bfloat16 operands act on the bit patterns as integers
  (triton issue #11584 for `tl.dot`).

A `@triton.jit` helper called from a kernel (the kernel's own, or Triton's `tl.interleave`, `tl.zeros_like`)
patches triton.language for the interpreter and never undoes it, so every later compilation for a GPU in
the process (the grader's sm_75/sm_90 checks) breaks; the patched call restores what it patched.
`@triton.autotune` cannot benchmark there either (it asks for a GPU driver and raises "0 active drivers").

`make_faithful()` replaces those builder methods (a table of patches, `_PATCHES`, each applied where its target
exists) with versions that convert bfloat16 to float32 exactly (a 16-bit shift), compute in float32 as the GPU's
bf16 instructions do, and round back to nearest even with NaN kept quiet; the autotuner runs every config once
and, all timings being equal, keeps the first, so the choice is the same in every run. Everything else is left
to the interpreter. What it still cannot run (inline PTX) is turned into `not_measured` by the tests that call a
kernel, never into `failed`.

`use_interpreter()` is what the box's runner calls on a machine without a GPU; a solver's own check gets the same
interpreter by calling it before any `@triton.jit` is applied, or with no change to the check at all:

    python3 -m grader.box.interpreter my_check.py [ARG ...]     # as `python3 my_check.py ARG ...` would run it
    python3 -m grader.box.interpreter -m pytest test_mine.py    # as `python3 -m pytest test_mine.py`
"""

from __future__ import annotations

from typing import Any

import numpy as np

_PATCHED = "_grader_faithful_bf16"


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) as the float32 values they encode (exact)."""
    return (np.asarray(bits).astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to nearest even bfloat16, as bit patterns (uint16); NaN stays a quiet NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    quiet = (bits >> np.uint32(16)) | np.uint32(0x0040)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def _run_once(kernel_call: Any, quantiles: Any) -> list[float]:
    """The autotuner's benchmark under the interpreter: run the config once; every config gets the same time."""
    kernel_call()
    return [1.0] * len(quantiles)


def use_interpreter() -> None:
    """Switch Triton's interpreter on and make it faithful (`make_faithful`): what the box's runner does on a machine
    without a GPU before it imports the submission, and what a solver's own check on a CPU calls to compute what a
    GPU would. Call it before any `@triton.jit` is applied (Triton reads TRITON_INTERPRET when a kernel is defined).
    Warns, naming them, about patches this Triton has no target for."""
    import os
    import warnings

    os.environ["TRITON_INTERPRET"] = "1"
    missing = make_faithful()
    if missing:
        warnings.warn(f"Triton's interpreter lacks {', '.join(missing)}: those operations stay as the interpreter "
                      f"does them, and a CPU verdict on them may differ from a GPU's", RuntimeWarning, stacklevel=2)


def _is_bf16(h: Any) -> bool:
    import triton.language as tl

    return h.dtype.scalar == tl.bfloat16


def _as_f32(h: Any) -> Any:
    """A bfloat16 handle as the float32 values it encodes (exact); any other handle as it is."""
    import triton.language as tl
    from triton.runtime.interpreter import TensorHandle

    return TensorHandle(bf16_bits_to_f32(h.data), tl.float32) if _is_bf16(h) else h


def _rounded(h: Any) -> Any:
    """A float32 result rounded to nearest even bfloat16; any other handle as it is."""
    import triton.language as tl
    from triton.runtime.interpreter import TensorHandle

    return TensorHandle(f32_to_bf16_bits(h.data), tl.bfloat16) if h.data.dtype == np.float32 else h


def _faithful_cast(cast_impl: Any) -> Any:
    """Casts to bfloat16 round to nearest even (the interpreter truncates); casts from it widen exactly first.
    Every int/fp conversion and truncation of the interpreter goes through `cast_impl`."""
    import triton.language as tl
    from triton.runtime.interpreter import TensorHandle

    def cast(self: Any, src: Any, dst_type: Any) -> Any:
        dst = dst_type.scalar
        if dst == tl.bfloat16 and not _is_bf16(src) and not src.dtype.scalar.is_fp8():
            return TensorHandle(f32_to_bf16_bits(src.data.astype(np.float32)), tl.bfloat16)
        if _is_bf16(src) and dst != tl.bfloat16 and not dst.is_fp8():
            return cast_impl(self, _as_f32(src), dst_type)
        return cast_impl(self, src, dst_type)

    return cast


def _faithful_fp_to_fp(fp_to_fp: Any) -> Any:
    """`fp_downcast_rounding="rtne"` (and the default) to float16/bfloat16 rounds to nearest even, carry included."""
    import triton.language as tl
    from triton.runtime import interpreter

    def convert(self: Any, src: Any, dst_type: Any, rounding_mode: Any) -> Any:
        dst, src_ty = dst_type.scalar, src.dtype.scalar
        rtne = rounding_mode is None or rounding_mode == interpreter._ir.ROUNDING_MODE.RTNE
        if rtne and dst in (tl.bfloat16, tl.float16) and src_ty in (tl.float32, tl.float16, tl.bfloat16, tl.float64):
            values = _as_f32(src).data
            if dst == tl.float16:
                return interpreter.TensorHandle(values.astype(np.float16), tl.float16)  # numpy rounds to nearest even
            return interpreter.TensorHandle(f32_to_bf16_bits(values), tl.bfloat16)
        return fp_to_fp(self, src, dst_type, rounding_mode)

    return convert


def _faithful_binary_op(binary_op: Any) -> Any:
    """Arithmetic on bfloat16 in float32, rounded back (the interpreter computes on the bit patterns)."""
    def op(self: Any, lhs: Any, rhs: Any, fn: Any) -> Any:
        if fn in (np.bitwise_and, np.bitwise_or, np.bitwise_xor) or not (_is_bf16(lhs) or _is_bf16(rhs)):
            return binary_op(self, lhs, rhs, fn)
        return _rounded(binary_op(self, _as_f32(lhs), _as_f32(rhs), fn))

    return op


def _faithful_unary_op(unary_op: Any) -> Any:
    """Unary operations (negation, math functions) on bfloat16 in float32, rounded back."""
    def op(self: Any, arg: Any, fn: Any) -> Any:
        return _rounded(unary_op(self, _as_f32(arg), fn)) if _is_bf16(arg) else unary_op(self, arg, fn)

    return op


def _faithful_dot(dot: Any) -> Any:
    """`tl.dot` on bfloat16 operands multiplies their values, not their bit patterns (triton issue #11584)."""
    def op(self: Any, a: Any, b: Any, d: Any, input_precision: Any, max_num_imprecise_acc: Any) -> Any:
        out = dot(self, _as_f32(a), _as_f32(b), _as_f32(d), input_precision, max_num_imprecise_acc)
        return _rounded(out) if _is_bf16(d) else out

    return op


def _scoped_device_call(_original: Any) -> Any:
    """A `@triton.jit` helper's call restores the triton.language patching it does (later GPU compiles need it)."""
    from triton.runtime import interpreter

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        scope = interpreter._patch_lang(self.fn)
        try:
            return self.rewrite()(*args, **kwargs)
        except Exception as e:
            raise interpreter.InterpreterError(repr(e)) from e
        finally:
            scope.restore()

    return call


def _single_run_benchmark(_original: Any) -> Any:
    """`@triton.autotune` runs each config once with equal timings (it cannot benchmark without a GPU driver)."""
    return property(lambda self: self._do_bench or _run_once)


# (module, class, attribute, replacement built from the original): what `make_faithful` patches.
_PATCHES = (
    ("triton.runtime.interpreter", "InterpreterBuilder", "cast_impl", _faithful_cast),
    ("triton.runtime.interpreter", "InterpreterBuilder", "create_fp_to_fp", _faithful_fp_to_fp),
    ("triton.runtime.interpreter", "InterpreterBuilder", "binary_op", _faithful_binary_op),
    ("triton.runtime.interpreter", "InterpreterBuilder", "unary_op", _faithful_unary_op),
    ("triton.runtime.interpreter", "InterpreterBuilder", "create_dot", _faithful_dot),
    ("triton.runtime.interpreter", "InterpretedFunction", "__call__", _scoped_device_call),
    ("triton.runtime.autotuner", "Autotuner", "do_bench", _single_run_benchmark),
)


def make_faithful() -> list[str]:
    """Apply `_PATCHES` once per process; each one only where this Triton has its target. Returns the targets it
    lacks (as 'Class.attribute'), none on the Triton versions named in the module's docstring."""
    import importlib

    missing = []
    for module, cls_name, attr, build in _PATCHES:
        cls = getattr(importlib.import_module(module), cls_name, None)
        if cls is None or not hasattr(cls, attr):
            missing.append(f"{cls_name}.{attr}")
            continue
        if not getattr(cls, f"{_PATCHED}_{attr}", False):
            setattr(cls, attr, build(getattr(cls, attr)))
            setattr(cls, f"{_PATCHED}_{attr}", True)
    return missing


# What torch and Triton raise when code asks for CUDA on a machine without it.
_NEEDS_CUDA = ("Torch not compiled with CUDA enabled", "requires CUDA support", "Found no NVIDIA driver",
               "No CUDA GPUs are available", "0 active drivers")


def limitation(exc: BaseException) -> str | None:
    """Why `exc` says nothing about the submission, when it comes from what this machine cannot do.

    On a machine without CUDA: code that asks for a CUDA device (`torch.cuda.synchronize()`, tensors made on
    "cuda", Triton's GPU driver) is decided on a GPU. Under the interpreter, two limits are known: inline PTX
    cannot run there, and torch.compile cannot capture a Triton launch there (a raw `kernel[grid](...)`, an
    autotuned kernel, `wrap_triton` inside a `triton_op`): dynamo reaches Triton's own runtime (on a GPU it
    captures the kernel without entering it), or fake tensors reach the interpreter. None when `exc` and the
    exceptions it was raised from are anything else.
    """
    import os

    import torch
    import triton

    runtime = os.path.join(os.path.dirname(triton.__file__), "runtime") + os.sep
    chain, seen = [], exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if not torch.cuda.is_available():
        for e in chain:
            if any(text in str(e) for text in _NEEDS_CUDA):
                return (f"the submission needs a CUDA device, which this machine lacks ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160]}); decided on a GPU")
    for e in chain:
        if isinstance(e, NotImplementedError) and "not supported in interpreter mode" in str(e):
            return f"the kernel uses a feature the Triton interpreter cannot run ({e}); it is decided on a GPU"
    from_dynamo = any(type(e).__module__.startswith("torch._dynamo") for e in chain)
    in_runtime = any(runtime in str(e) or _raised_in(e, runtime) for e in chain)
    if from_dynamo and in_runtime and os.environ.get("TRITON_INTERPRET") == "1":
        return ("torch.compile reached the Triton interpreter's own runtime while capturing the kernel launch (a raw "
                "kernel[grid](...), an autotuned kernel or wrap_triton, which dynamo captures as a Triton kernel on a "
                "GPU but cannot under TRITON_INTERPRET=1); decided on a GPU")
    return None


def _raised_in(exc: BaseException, directory: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(directory):
            return True
        tb = tb.tb_next
    return False


USAGE = ("usage: python3 -m grader.box.interpreter SCRIPT [ARG ...]\n"
         "       python3 -m grader.box.interpreter -m MODULE [ARG ...]\n"
         "Run SCRIPT (or MODULE, as python3 -m runs it) with Triton's interpreter on and rounding as a GPU does: the\n"
         "interpreter the grader's box uses on a machine without a GPU (grader.box.interpreter.use_interpreter).")


def main(argv: list[str] | None = None) -> None:
    """`python3 -m grader.box.interpreter`: run a script or module as `python3` would, under `use_interpreter()`."""
    import os
    import runpy
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    if not args or args == ["-m"]:
        raise SystemExit(USAGE)
    use_interpreter()
    if args[0] == "-m":
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))  # the script's directory, as `python3 SCRIPT` has it
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()

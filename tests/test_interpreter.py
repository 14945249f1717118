"""Under the grader, the Triton interpreter rounds as a GPU does: what a kernel in this puzzle's style computes
on a CPU is what it computes on a GPU (grader/box/interpreter.py). Each test runs in a subprocess, since the
interpreter must be switched on before Triton is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.verdicts import REPO

PRELUDE = """
import json
import os
os.environ["TRITON_INTERPRET"] = "1"
from grader.box.interpreter import make_faithful, limitation
make_faithful()
import torch, triton, triton.language as tl
"""


def _run(body: str, tmp_path: Path) -> str:
    script = tmp_path / "kernels.py"  # Triton compiles @triton.jit functions from their source file
    script.write_text(PRELUDE + textwrap.dedent(body))
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_float_to_bf16_and_fp16_round_to_nearest_even_like_torch(tmp_path):
    """Ties to even, the carry into the exponent, subnormals, infinities: plain casts and `rtne` casts."""
    _run("""
    @triton.jit
    def k(x_ptr, plain_ptr, rtne_ptr, half_ptr, n, B: tl.constexpr):
        i = tl.arange(0, B)
        m = i < n
        x = tl.load(x_ptr + i, mask=m)
        tl.store(plain_ptr + i, x.to(tl.bfloat16), mask=m)
        tl.store(rtne_ptr + i, x.to(tl.bfloat16, fp_downcast_rounding="rtne"), mask=m)
        tl.store(half_ptr + i, x.to(tl.float16, fp_downcast_rounding="rtne"), mask=m)

    special = [1.00390625, 1.01171875, 1.9999999, 1 + 2**-8 + 2**-20, -3.3e38, 3.4e38, 1e-40, -0.0, float("inf")]
    x = torch.cat([torch.tensor(special), torch.randn(4000) * torch.logspace(-30, 30, 4000)]).float()
    n = x.numel()
    plain, rtne = torch.empty(n, dtype=torch.bfloat16), torch.empty(n, dtype=torch.bfloat16)
    half = torch.empty(n, dtype=torch.float16)
    k[(1,)](x, plain, rtne, half, n, B=8192)
    for got, want in ((plain, x.bfloat16()), (rtne, x.bfloat16()), (half, x.half())):
        assert torch.equal(got.view(torch.int16), want.view(torch.int16)), (got - want).abs().max()
    """, tmp_path)


def test_bf16_dot_and_arithmetic_act_on_values_not_bit_patterns(tmp_path):
    _run("""
    @triton.jit
    def k(a_ptr, b_ptr, c_ptr, d_ptr):
        r = tl.arange(0, 16)
        a = tl.load(a_ptr + r[:, None] * 16 + r[None, :])
        b = tl.load(b_ptr + r[:, None] * 16 + r[None, :])
        tl.store(c_ptr + r[:, None] * 16 + r[None, :], tl.dot(a, b))
        tl.store(d_ptr + r[:, None] * 16 + r[None, :], -(a * b + a))

    a, b = torch.randn(16, 16).bfloat16(), torch.randn(16, 16).bfloat16()
    c, d = torch.empty(16, 16), torch.empty(16, 16, dtype=torch.bfloat16)
    k[(1,)](a, b, c, d)
    torch.testing.assert_close(c, a.float() @ b.float(), rtol=1e-6, atol=1e-5)
    assert torch.equal(d, -((a * b) + a))  # torch rounds each bf16 operation to nearest even, as a GPU does
    """, tmp_path)


def test_autotuned_kernels_run_every_config_once_and_keep_the_first(tmp_path):
    out = _run("""
    seen = []

    @triton.autotune(configs=[triton.Config({"B": 32}), triton.Config({"B": 64})], key=["n"])
    @triton.jit
    def k(x_ptr, n, B: tl.constexpr):
        i = tl.program_id(0) * B + tl.arange(0, B)
        tl.store(x_ptr + i, tl.load(x_ptr + i, mask=i < n) + 1, mask=i < n)

    x = torch.zeros(100)
    k[lambda meta: (triton.cdiv(100, meta["B"]),)](x, 100)  # tuning runs both configs, then the chosen one
    print(k.best_config.kwargs["B"], int(x[0]))
    """, tmp_path)
    assert out.split() == ["32", "3"], out


def test_a_helper_call_leaves_no_interpreter_patch_behind(tmp_path):
    """After a kernel that calls a @triton.jit helper (tl.interleave) runs, kernels still compile for a GPU."""
    _run("""
    from grader.measure.launches import Launch, compile_for, record_launches

    @triton.jit
    def k(x_ptr, out_ptr, B: tl.constexpr):
        x = tl.load(x_ptr + tl.arange(0, B))
        tl.store(out_ptr + tl.arange(0, 2 * B), tl.interleave(x, x * 2).to(out_ptr.dtype.element_ty))

    x, out = torch.arange(16.0), torch.empty(32, dtype=torch.bfloat16)
    with record_launches() as log:
        k[(1,)](x, out, B=16)
    assert out[1::2].float().tolist() == (2 * x).tolist()
    ok, message, _ = compile_for(log.launches[0], 90)
    assert ok, message
    """, tmp_path)


def test_inline_asm_and_compiled_raw_launches_are_named_as_interpreter_limits(tmp_path):
    """What the interpreter cannot run is named as such (so it is not_measured), and a real error is not."""
    _run("""
    @triton.jit
    def asm(x_ptr, B: tl.constexpr):
        i = tl.arange(0, B)
        x = tl.load(x_ptr + i)
        tl.store(x_ptr + i, tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=tl.float32,
                                                      is_pure=True, pack=1))

    @triton.jit
    def plain(x_ptr, B: tl.constexpr):
        i = tl.arange(0, B)
        tl.store(x_ptr + i, tl.load(x_ptr + i) * 2)

    x = torch.ones(16)
    try:
        asm[(1,)](x, B=16)
    except Exception as exc:
        assert "cannot run" in limitation(exc), exc
    else:
        raise AssertionError("inline asm ran in the interpreter")

    def f(t):
        plain[(1,)](t, B=16)
        return t * 1

    try:
        torch.compile(f, fullgraph=True)(x)
    except Exception as exc:
        assert "decided on a GPU" in limitation(exc), exc
    assert limitation(ValueError("a submission's own error")) is None
    """, tmp_path)



def test_every_patch_finds_its_target_in_this_triton_and_a_missing_one_is_named(tmp_path):
    out = _run("""
        from grader.box import interpreter
        print(make_faithful())
        interpreter._PATCHES += (("triton.runtime.interpreter", "InterpreterBuilder", "create_no_such_op", id),)
        print(make_faithful())
    """, tmp_path)
    assert out.splitlines() == ["[]", "['InterpreterBuilder.create_no_such_op']"]


BF16_STORE = """
import json, sys
import torch, triton, triton.language as tl

@triton.jit
def store(x_ptr, out_ptr, n, B: tl.constexpr):
    i = tl.arange(0, B)
    tl.store(out_ptr + i, tl.load(x_ptr + i, mask=i < n), mask=i < n)  # float32 values into a bfloat16 pointer

x = torch.randn(4096, generator=torch.Generator().manual_seed(0))
out = torch.empty(x.numel(), dtype=torch.bfloat16)
store[(1,)](x, out, x.numel(), B=4096)
bits = out.view(torch.int16)
nearest_even = x.bfloat16().view(torch.int16)  # torch rounds to nearest even, as a GPU's cvt.rn.bf16.f32 does
truncated = (x.view(torch.int32) >> 16).to(torch.int16)
print(json.dumps({"argv": sys.argv[1:], "n": x.numel(), "nearest_even": int((bits == nearest_even).sum()),
                  "truncated": int((bits == truncated).sum())}))
"""


def test_the_solvers_command_stores_bf16_rounded_to_nearest_even_where_the_plain_interpreter_truncates(tmp_path):
    """`python3 -m grader.box.interpreter SCRIPT ARG` runs a solver's own check under the box's interpreter: every
    float32 value stored into a bfloat16 pointer rounds to nearest even, as on a GPU; the same script under plain
    TRITON_INTERPRET=1 truncates every one of them (about half end 1 ulp low)."""
    script = tmp_path / "my_check.py"
    script.write_text(BF16_STORE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRITON_INTERPRET", None)

    def run(*command: str, **extra: str) -> dict:
        proc = subprocess.run([sys.executable, *command], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**env, **extra})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout.splitlines()[-1])

    plain = run(str(script), "an-argument", TRITON_INTERPRET="1")
    gpu_like = run("-m", "grader.box.interpreter", str(script), "an-argument")
    n = plain["n"]
    assert plain["truncated"] == n and plain["nearest_even"] < 0.6 * n, plain
    assert gpu_like == {"argv": ["an-argument"], "n": n, "nearest_even": n, "truncated": plain["nearest_even"]}, \
        gpu_like

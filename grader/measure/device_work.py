"""The torch operations a call runs and the memory it allocates, seen through a TorchDispatchMode.

Allocation and view operations are free; anything else is device work (a bitsandbytes op, an
elementwise kernel, a copy). A `torch.library.custom_op` (or `triton_op`) of the submission's is looked
into: its implementation runs under the same recording, so a Triton kernel wrapped as an op is one launch
and any torch work hidden inside it still counts. Operations that the Triton interpreter itself runs while it emulates a
kernel are not the submission's and are left out.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grader.measure.launches import LaunchLog

# Operations that neither compute nor move data: allocation, metadata, views.
FREE_OPS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "view", "_unsafe_view",
    "reshape", "as_strided", "slice", "select", "alias", "detach", "t", "transpose", "permute", "expand",
    "unsqueeze", "squeeze", "lift_fresh", "set_", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset",
    "is_same_size", "_reshape_alias", "unbind", "split", "chunk", "narrow", "flatten", "view_as",
    "resize_", "record_stream", "_has_compatible_shallow_copy_type", "is_pinned", "contiguous",
})


@dataclass
class DeviceWork:
    """What a call did besides Triton kernels."""

    compute_ops: list[str] = field(default_factory=list)
    allocated_bytes: int = 0  # total bytes of new tensors created by the call
    peak_cuda_bytes: int | None = None  # max_memory_allocated delta on a GPU


def _custom_op(func: torch._ops.OpOverload):
    """The `torch.library.custom_op` / `triton_op` definition behind `func`, or None for aten and other ops."""
    from torch._library.custom_ops import OPDEFS

    return OPDEFS.get(func._schema.name) if func.namespace not in ("aten", "prim", "prims") else None


class _Recorder(TorchDispatchMode):
    def __init__(self, work: DeviceWork, launches: LaunchLog | None) -> None:
        super().__init__()
        self.work, self.launches = work, launches

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        opdef = _custom_op(func)
        if opdef is not None:  # the submission's own custom op: what runs inside it is what counts
            with self:
                return opdef._init_fn(*args, **(kwargs or {}))
        out = func(*args, **(kwargs or {}))
        if self.launches is not None and self.launches.in_launch:
            return out  # the interpreter's own bookkeeping
        name = func.overloadpacket.__name__
        if name not in FREE_OPS:
            self.work.compute_ops.append(str(func))
        if name.startswith(("empty", "new_empty")) and isinstance(out, torch.Tensor):
            self.work.allocated_bytes += out.untyped_storage().nbytes()
        return out


@contextlib.contextmanager
def record_device_work(launches: LaunchLog | None = None) -> Iterator[DeviceWork]:
    """Record compute ops and allocations in the block; pass the active LaunchLog under the interpreter."""
    work = DeviceWork()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with _Recorder(work, launches):
        yield work
    if cuda:
        torch.cuda.synchronize()
        work.peak_cuda_bytes = torch.cuda.max_memory_allocated() - base


def cuda_kernels(fn) -> list[str]:
    """Names of the CUDA kernels that `fn()` launches, from torch.profiler (GPU only)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
            and not e.name.startswith(("Memcpy", "Memset"))]

"""Peak memory of a function: on CUDA from the caching allocator, anywhere from fake tensors.

`fake_tensor_peak` runs the function on fake tensors (shapes, dtypes and strides, no data) inside a
`TorchDispatchMode` that adds up the bytes of every storage an operator creates and subtracts them when
the storage is freed. It decides puzzle-size memory questions on a CPU in seconds and sees every tensor
autograd saves or frees, hidden temporaries included; it cannot see kernel workspaces (cuBLAS, Triton
scratch) or allocator rounding and fragmentation, which only `cuda_peak` measures.

Both return a `MemoryPeak` counted above what was live before the measured function started.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

S = TypeVar("S")

FAKE_METHOD = "fake-tensor live-storage tracker (no kernel workspaces)"
CUDA_METHOD = "torch.cuda.max_memory_allocated after reset_peak_memory_stats"


@dataclass(frozen=True)
class MemoryPeak:
    """Bytes allocated by a function beyond those live when it started."""

    peak_bytes: int  # the most live at any moment
    retained_bytes: int  # still live when it returned (gradients it left behind, say)
    method: str  # how it was measured

    @property
    def peak_gib(self) -> float:
        """`peak_bytes` in GiB."""
        return self.peak_bytes / 2**30


def _storage_key(t: torch.Tensor) -> tuple[int, torch.UntypedStorage] | None:
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
        return None
    return storage._cdata, storage


class LiveStorageTracker(TorchDispatchMode):
    """Counts the bytes of storages created while active, until each is freed; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._sizes: dict[int, int] = {}

    def _release(self, key: int) -> None:
        self.live_bytes -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        existing = {k[0] for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
                    if (k := _storage_key(t)) is not None}
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            key = _storage_key(t)
            if key is None or key[0] in existing or key[0] in self._sizes:
                continue  # a view of, or a write into, a storage that is already counted (or predates us)
            cdata, storage = key
            self._sizes[cdata] = storage.nbytes()
            self.live_bytes += storage.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            weakref.finalize(storage, self._release, cdata)
        return out


def fake_tensor_peak(setup: Callable[[], S], run: Callable[[S], object]) -> MemoryPeak:
    """Peak bytes of `run(setup())` on fake tensors; `setup` builds the inputs, which are not counted.

    Both run under one `FakeTensorMode`, so `setup` may ask for any size: nothing is allocated.
    Operators without a fake implementation (data-dependent ones such as `.item()`) raise.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=False):
        state = setup()
        tracker = LiveStorageTracker()
        with tracker:
            run(state)
            gc.collect()  # reference cycles in the measured code must not count as retained
        return MemoryPeak(tracker.peak_bytes, tracker.live_bytes, FAKE_METHOD)


def cuda_peak(setup: Callable[[], S], run: Callable[[S], object]) -> MemoryPeak:
    """Peak CUDA bytes of `run(setup())` from the caching allocator, above what `setup` left allocated."""
    state = setup()
    torch.cuda.synchronize()
    gc.collect()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run(state)
    torch.cuda.synchronize()
    gc.collect()
    peak = torch.cuda.max_memory_allocated() - base
    retained = torch.cuda.memory_allocated() - base
    del state
    return MemoryPeak(peak, retained, CUDA_METHOD)


_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def process_peak_bytes(device: torch.device) -> int:
    """This process's own peak memory on `device`: its CUDA allocator's peak reserved bytes (what it held of the
    GPU, cached blocks included; the CUDA context itself not counted), or on a CPU its peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_reserved(device)
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def requested_bytes(error: BaseException) -> int:
    """The allocation an out-of-memory error says failed ("Tried to allocate 1.00 GiB", torch's CUDA wording;
    "you tried to allocate N bytes", its CPU allocator's), else 0."""
    import re

    text = str(error)
    found = re.search(r"Tried to allocate ([\d.]+) (B|KiB|MiB|GiB|TiB)", text)
    if found:
        return int(float(found.group(1)) * _UNITS[found.group(2)])
    found = re.search(r"tried to allocate (\d+) bytes", text)
    return int(found.group(1)) if found else 0


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an out-of-memory error: torch's (its CUDA or CPU allocator's) or Python's MemoryError."""
    return isinstance(error, (MemoryError, torch.OutOfMemoryError))

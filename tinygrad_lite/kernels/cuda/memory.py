"""A caching allocator for GPU memory, plugged into Numba as an EMM plugin.

Why: a training step makes and drops hundreds of temporary device arrays. With
Numba's default memory manager each one costs a ``cuMemAlloc`` (tens to hundreds of
microseconds) and, later, a ``cuMemFree``; the frees are batched (every 10 arrays by
default) and *each ``cuMemFree`` waits for the whole GPU to finish*, so the host can
never run ahead of the device. Kernel launches then cannot overlap Python work, and
a small model's step on the GPU becomes slower than on the CPU.

What: the same idea as PyTorch's CUDA caching allocator, in its simplest form. A
block whose array is garbage-collected is not freed but kept in a free list keyed
by its (rounded) size, and the next request of that size takes it back. Sizes are
rounded up (to 512 bytes below 1 MiB, to 2 MiB above) so that arrays of nearly
equal size share blocks. If ``cuMemAlloc`` runs out of memory, every cached block
is freed and the allocation is tried once more.

Why reuse is safe without events: all of our kernels and copies run on the default
stream, in order. A block freed by the host while a queued kernel still reads it can
only be handed to work queued *after* that kernel, which the stream runs later.

Install: :func:`install` is called when :mod:`tinygrad_lite.kernels.cuda` is imported,
before Numba creates its CUDA context (the memory manager of a context is fixed when
the context is created). Set ``TINYGRAD_LITE_CUDA_ALLOCATOR=numba`` to keep Numba's
default manager; a ``NUMBA_CUDA_MEMORY_MANAGER`` the user chose is never replaced.
The simulator has no memory managers, so nothing is installed under it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import defaultdict

SMALL_LIMIT = 1 << 20
"""Requests up to 1 MiB are rounded up to a multiple of ``SMALL_ROUND``."""
SMALL_ROUND = 512
LARGE_ROUND = 2 << 20
"""Larger requests are rounded up to a multiple of 2 MiB."""


def rounded_size(size: int) -> int:
    """The block size that serves a request of ``size`` bytes (at least one unit)."""
    unit = SMALL_ROUND if size <= SMALL_LIMIT else LARGE_ROUND
    return max(unit, -(-int(size) // unit) * unit)


class BlockPool:
    """Free device blocks by size: the bookkeeping of the allocator, without CUDA.

    ``raw_alloc(size) -> pointer`` and ``raw_free(pointer)`` do the real work; they
    are parameters so that the pool logic is testable on a machine without a GPU.
    """

    def __init__(self, raw_alloc, raw_free, out_of_memory=MemoryError):
        self._raw_alloc = raw_alloc
        self._raw_free = raw_free
        self._out_of_memory = out_of_memory
        self._free: dict[int, list] = defaultdict(list)
        self._lock = threading.Lock()  # finalizers can run in any thread
        self.stats = {"allocated_bytes": 0, "cached_bytes": 0, "reused": 0, "cuda_allocs": 0}

    def take(self, size: int):
        """(pointer, block size) for a request of ``size`` bytes: reused if possible."""
        block = rounded_size(size)
        with self._lock:
            if self._free[block]:
                self.stats["reused"] += 1
                self.stats["cached_bytes"] -= block
                self.stats["allocated_bytes"] += block
                return self._free[block].pop(), block
        try:
            pointer = self._raw_alloc(block)
        except self._out_of_memory:
            self.release_cached()  # give the driver back what we hold, then try again
            pointer = self._raw_alloc(block)
        with self._lock:
            self.stats["cuda_allocs"] += 1
            self.stats["allocated_bytes"] += block
        return pointer, block

    def give_back(self, pointer, block: int) -> None:
        """Keep a block whose array is gone for the next request of its size."""
        with self._lock:
            self._free[block].append(pointer)
            self.stats["allocated_bytes"] -= block
            self.stats["cached_bytes"] += block

    def release_cached(self) -> int:
        """Free every cached block with the driver; returns the bytes released."""
        with self._lock:
            blocks = [(p, size) for size, ps in self._free.items() for p in ps]
            self._free.clear()
            self.stats["cached_bytes"] = 0
        for pointer, _ in blocks:
            self._raw_free(pointer)
        return sum(size for _, size in blocks)


_POOLS: list[BlockPool] = []
"""The pools of the memory managers created so far (one per CUDA context)."""


def _manager_class():
    """The EMM plugin class (built lazily: importing it needs numba.cuda's driver API)."""
    from numba.cuda import GetIpcHandleMixin, HostOnlyCUDAMemoryManager, MemoryInfo, MemoryPointer
    from numba.cuda.cudadrv.driver import CudaAPIError, binding, driver

    def raw_alloc(size):
        try:
            return driver.cuMemAlloc(size)
        except CudaAPIError as error:
            if error.code == binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY:
                raise MemoryError(str(error)) from error
            raise

    def raw_free(pointer):
        driver.cuMemFree(pointer)

    class CachingMemoryManager(GetIpcHandleMixin, HostOnlyCUDAMemoryManager):
        """Numba memory manager that recycles freed device blocks (see module docstring)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pool = BlockPool(raw_alloc, raw_free)

        def initialize(self):  # called each time the context is prepared for use
            if not any(pool is self.pool for pool in _POOLS):
                _POOLS.append(self.pool)

        def memalloc(self, size):
            pointer, block = self.pool.take(size)
            pool = self.pool
            finalizer = lambda: pool.give_back(pointer, block)  # noqa: E731
            return MemoryPointer(weakref.proxy(self.context), pointer, size, finalizer=finalizer)

        def get_memory_info(self):
            free, total = driver.cuMemGetInfo()
            return MemoryInfo(free=free, total=total)

        def reset(self):
            self.pool.release_cached()
            super().reset()

        @property
        def interface_version(self):
            return 1

    return CachingMemoryManager


def install() -> bool:
    """Make Numba use the caching allocator for contexts created from now on.

    Returns False (and changes nothing) under the simulator, when the user picked a
    memory manager (``NUMBA_CUDA_MEMORY_MANAGER``) or asked for Numba's own
    (``TINYGRAD_LITE_CUDA_ALLOCATOR=numba``), or when numba.cuda lacks the EMM API.
    """
    if os.environ.get("TINYGRAD_LITE_CUDA_ALLOCATOR", "caching") == "numba":
        return False
    try:
        from numba import config, cuda
    except ImportError:
        return False
    if config.ENABLE_CUDASIM or getattr(config, "CUDA_MEMORY_MANAGER", "default") != "default":
        return False
    try:
        cuda.set_memory_manager(_manager_class())
    except (ImportError, AttributeError):  # a numba-cuda without the EMM plugin API
        return False
    return True


def empty_cache() -> int:
    """Free the cached (unused) blocks with the driver; returns the bytes released.

    Arrays still alive keep their memory. Call it before handing the GPU to another
    library in the same process, or to see the real footprint in ``nvidia-smi``.
    """
    return sum(pool.release_cached() for pool in _POOLS)


def memory_stats() -> dict:
    """Bytes held by live arrays and by the cache, reuses and driver allocations."""
    totals = {"allocated_bytes": 0, "cached_bytes": 0, "reused": 0, "cuda_allocs": 0}
    for pool in _POOLS:
        for key, value in pool.stats.items():
            totals[key] += value
    return totals

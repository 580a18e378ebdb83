"""``tl.cuda``: is a GPU usable through Numba CUDA?

``Tensor.to("cuda")`` and ``Module.to("cuda")`` need either an NVIDIA GPU with its
driver and ``numba-cuda`` installed, or Numba's CUDA simulator (slow, for tests and
teaching), chosen by setting ``NUMBA_ENABLE_CUDASIM=1`` before Python starts::

    device = "cuda" if tl.cuda.is_available() else "cpu"
"""

from __future__ import annotations


def is_available() -> bool:
    """True when Numba CUDA can run kernels (a real GPU, or the simulator if enabled).

    The simulator counts only if it was switched on when numba was first imported
    (that is what decides whether kernels run in it), so this never says True for a
    setup in which ``Tensor.to("cuda")`` would then fail.
    """
    try:
        from numba import config, cuda
    except ImportError:
        return False
    try:
        return bool(config.ENABLE_CUDASIM) or bool(cuda.is_available())
    except Exception:  # a broken driver install must read as "no GPU", not crash
        return False


def empty_cache() -> int:
    """Free the GPU blocks that the caching allocator keeps for reuse (bytes released).

    Like ``torch.cuda.empty_cache()``: memory of arrays still alive stays in use.
    """
    from .kernels.cuda import memory

    return memory.empty_cache()


def memory_stats() -> dict:
    """``allocated_bytes`` (live arrays), ``cached_bytes`` (kept for reuse), ``reused``
    and ``cuda_allocs`` (requests served from the cache / by the driver)."""
    from .kernels.cuda import memory

    return memory.memory_stats()

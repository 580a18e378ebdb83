"""A lean kernel launch: Numba's launch without the per-call typing and bookkeeping.

Why: on an H200, ``kernel[grid, block](*args)`` costs about 18 us of Python with no
arguments and 5 us more per array argument, while many kernels of a training step run
for a few microseconds. Most of that time does not depend on the call: Numba types
every argument to pick the compiled overload, builds launch configuration objects and
re-derives each array's layout. For a kernel that is called again and again with the
same *kinds* of arguments, all of that can be done once.

How: :class:`LeanKernel` wraps a ``@cuda.jit`` dispatcher. The first call with a given
*argument signature* (each argument's dtype and number of dimensions, or "int") goes
through Numba's normal launch, which compiles the kernel; the launcher then looks up
the compiled overload and keeps its function handle. Later calls with that signature
pack the arguments the way Numba's ``_Kernel._prepare_args`` does (an array becomes
``meminfo, parent, size, itemsize, data pointer, *shape, *strides``; an integer a
64-bit value) and hand them to ``cuda.core.launch`` with a launch configuration
cached per grid and block shape.

What it accepts: C-contiguous Numba device arrays (also wrapped in :func:`flat`, to
be seen by the kernel as 1-D), Python ints and floats, numpy int32/int64/float32/float64
scalars and tuples of Python ints. Anything else, the CUDA simulator, or
``TINYGRAD_LITE_CUDA_LAUNCH=numba`` in the environment takes Numba's own path, so
the lean path can be switched off without touching code. It relies on numba-cuda
internals of version 0.30 (the overload table and the argument layout); any surprise
while setting up a signature falls back to Numba's path for that signature.

Limit: the kept function handles belong to the CUDA context that was current when they
were compiled, so the lean path assumes one GPU context per process (the normal case).
A program that switches devices with ``cuda.select_device`` or closes the context with
``cuda.close()`` should set ``TINYGRAD_LITE_CUDA_LAUNCH=numba``.
"""

from __future__ import annotations

import ctypes
import os
import weakref

import numpy as np

from .views import is_device_array

_INT_TYPES = (int, np.integer)
_SCALAR_CTYPES = {"<i8": ctypes.c_int64, "<i4": ctypes.c_int32, "<f8": ctypes.c_double,
                  "<f4": ctypes.c_float}
"""How Numba passes a scalar of each dtype (``_prepare_args``: ``ctypes.c_<type>``)."""


def lean_launch_enabled() -> bool:
    """Whether the lean path is on (off in the simulator or when the environment says so)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    return os.environ.get("TINYGRAD_LITE_CUDA_LAUNCH", "lean") != "numba"


def _scalar_dtype(arg) -> str | None:
    """The dtype Numba gives a scalar argument, if the lean path packs it."""
    if isinstance(arg, bool):
        return None
    if isinstance(arg, int):
        return "<i8"
    if isinstance(arg, float):
        return "<f8"
    if isinstance(arg, (np.integer, np.floating)):
        dtype = arg.dtype.str
        return dtype if dtype in _SCALAR_CTYPES else None
    return None


class FlatArray:
    """A C-contiguous device array handed to a kernel as the 1-D array of its elements.

    Kernels that index their arrays by flat position (GEMM, conv, pooling) take 1-D
    arrays; ``reshape`` makes a new Numba array object, which costs more than the
    launch itself. The lean path packs the array as 1-D directly; Numba's path
    reshapes it.
    """

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def as_1d(self):
        return self.array.reshape((self.array.size,))


def flat(array) -> FlatArray:
    """``array`` (C-contiguous) passed to a kernel as 1-D: ``kernel[g, b](flat(x), ...)``."""
    return FlatArray(array)


def _numba_args(args) -> tuple:
    """The arguments as Numba's own launch takes them (flat arrays reshaped)."""
    return tuple(arg.as_1d() if type(arg) is FlatArray else arg for arg in args)


def _signature(args) -> tuple | None:
    """The launch signature of ``args``, or None if the lean path cannot pack them."""
    signature = []
    for arg in args:
        if type(arg) is FlatArray:
            if not arg.array.flags["C_CONTIGUOUS"]:
                return None
            signature.append((arg.array.dtype.str, "flat"))
        elif is_device_array(arg):
            if not arg.flags["C_CONTIGUOUS"]:
                return None
            signature.append((arg.dtype.str, arg.ndim))
        elif isinstance(arg, tuple):
            if not all(type(v) is int for v in arg):
                return None
            signature.append(("tuple", len(arg)))
        else:
            dtype = _scalar_dtype(arg)
            if dtype is None:
                return None
            signature.append(dtype)
    return tuple(signature)


def _pack(args, signature) -> list:
    """The kernel parameters, laid out as Numba lays them out (see the module docstring)."""
    params = []
    for arg, kind in zip(args, signature):
        if isinstance(kind, str):  # a scalar
            params.append(_SCALAR_CTYPES[kind](arg))
        elif kind[0] == "tuple":
            params.extend(ctypes.c_int64(v) for v in arg)
        elif kind[1] == "flat":
            array = arg.array
            pointer = array.device_ctypes_pointer.value or 0
            size, itemsize = array.size, array.dtype.itemsize
            params += [0, 0, size, itemsize, pointer, size, itemsize]
        else:
            pointer = arg.device_ctypes_pointer.value or 0
            params += [0, 0, arg.size, arg.dtype.itemsize, pointer, *arg.shape, *arg.strides]
    return params


class LeanKernel:
    """A ``@cuda.jit`` kernel launched as ``LeanKernel(kernel)[grid, block](*args)``."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self._functions: dict = {}  # signature -> compiled function handle, or None
        self._configs: dict = {}  # (grid, block) -> cuda.core LaunchConfig
        _ALL_KERNELS.add(self)

    def __getitem__(self, config):
        grid, block = config
        return lambda *args: self.launch(grid, block, args)

    def launch(self, grid, block, args) -> None:
        signature = _signature(args) if lean_launch_enabled() else None
        function = self._functions.get(signature) if signature is not None else None
        if function is None:
            numba_args = _numba_args(args)
            self.dispatcher[grid, block](*numba_args)
            if signature is not None and signature not in self._functions:
                self._functions[signature] = self._compiled_function(numba_args)
            return
        try:
            _core_launch(self._stream(), self._config(grid, block), function,
                         *_pack(args, signature))
        except Exception:  # cuda.core refused the parameters: Numba's path from now on
            self._functions[signature] = None
            self.dispatcher[grid, block](*_numba_args(args))

    def _compiled_function(self, args):
        """The compiled kernel's function handle for these arguments, or None."""
        try:
            argtypes = tuple(self.dispatcher.typeof_pyval(a) for a in args)
            overload = self.dispatcher.overloads[argtypes]
            return overload._codelibrary.get_cufunc().kernel
        except Exception:  # an unexpected numba-cuda internal: keep Numba's path
            return None

    def _config(self, grid, block):
        key = (grid, block)
        config = self._configs.get(key)
        if config is None:
            config = self._configs[key] = _launch_config(_dim3(grid), _dim3(block))
        return config

    @staticmethod
    def _stream():
        global _DEFAULT_STREAM
        if _DEFAULT_STREAM is None:
            from numba.cuda.cudadrv import driver

            _DEFAULT_STREAM = driver._to_core_stream(0)
        return _DEFAULT_STREAM


_DEFAULT_STREAM = None
_ALL_KERNELS: weakref.WeakSet = weakref.WeakSet()


def lean_launch_stats() -> dict:
    """How many launch signatures, over all kernels, take each path (for a check that
    the lean path is really in use: ``{"lean": ..., "numba": ...}``)."""
    functions = [f for kernel in list(_ALL_KERNELS) for f in kernel._functions.values()]
    lean = sum(f is not None for f in functions)
    return {"lean": lean, "numba": len(functions) - lean}


def _dim3(value) -> tuple[int, int, int]:
    value = (value,) if isinstance(value, _INT_TYPES) else tuple(value)
    return tuple(int(v) for v in value) + (1,) * (3 - len(value))


def _launch_config(grid, block):
    from cuda.core import LaunchConfig
    from numba.cuda._compat import CUDA_CORE_GE_1_0

    if CUDA_CORE_GE_1_0:
        return LaunchConfig(grid=grid, block=block, shmem_size=0, is_cooperative=False)
    return LaunchConfig(grid=grid, block=block, shmem_size=0, cooperative_launch=False)


def _core_launch(stream, config, function, *params):
    global _LAUNCH
    if _LAUNCH is None:
        from cuda.core import launch as _LAUNCH
    _LAUNCH(stream, config, function, *params)


_LAUNCH = None


def lean_kernel(fn) -> LeanKernel:
    """``@cuda.jit`` for a kernel, launched through :class:`LeanKernel`."""
    from numba import cuda

    return LeanKernel(cuda.jit(fn))

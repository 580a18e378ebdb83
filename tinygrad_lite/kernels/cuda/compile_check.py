"""Compile every CUDA kernel to PTX on a machine without a GPU.

The simulator (``NUMBA_ENABLE_CUDASIM=1``) runs kernels as plain Python, so it never
asks Numba to *type* them: a kernel can pass every simulator test and still fail to
compile on a real GPU (say, a shared-array shape that is not a compile-time constant).
This script closes that gap. It runs the public functions on small inputs, but
instead of launching each kernel it compiles it, with the exact argument types of that
launch, to PTX for a recent GPU (``cuda.compile_ptx``). Only the CUDA toolkit's NVVM
library and ``libdevice`` are needed, not a GPU or a driver::

    python -m tinygrad_lite.kernels.cuda.compile_check          # CUDA_HOME may help
    python -m tinygrad_lite.kernels.cuda.compile_check --ptx-report

``--ptx-report`` prints, for the GEMM and conv kernels, how many of the instructions of
one k-step are FMAs (and, where ``ptxas`` is installed, registers and spills): the
numbers behind the tile choices and the unrolled k-loop of :mod:`.gemm`.

Device arrays are faked with host numpy arrays and nothing is executed, so the
numbers computed along the way are meaningless; only "did it compile" is checked.
To work without a driver it replaces three small Numba internals (the compute
capability of the "current device", the list of architectures NVRTC supports and
the libdevice path); they are pinned to numba-cuda 0.30 and may need updating.
"""

from __future__ import annotations

import glob
import os
import sys
import time
import types

import numpy as np

TARGET_CC = (8, 0)
"""Compute capability compiled for (any that NVVM supports would do)."""


def find_libdevice() -> str | None:
    """Path of ``libdevice.10.bc`` from $CUDA_HOME, $CUDA_PATH or /usr/local/cuda*."""
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda",
             *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
    for root in roots:
        if root:
            path = os.path.join(root, "nvvm", "libdevice", "libdevice.10.bc")
            if os.path.exists(path):
                return path
    return None


def _patch_numba_for_offline_compilation(libdevice: str) -> None:
    """Let ``cuda.compile_ptx`` run without a driver or NVRTC (see the module docstring)."""
    os.environ.setdefault("CUDA_HOME", os.path.dirname(os.path.dirname(os.path.dirname(
        libdevice))))
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv import libs, nvrtc, nvvm

    nvrtc.get_supported_ccs = lambda: ((7, 5), (8, 0), (8, 6), (8, 9), (9, 0))
    libs.get_libdevice = lambda: libdevice
    nvvm.get_libdevice = lambda: libdevice
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=TARGET_CC)


class _HostDeviceArray(np.ndarray):
    """A numpy array posing as a device array (has ``copy_to_host``)."""

    def copy_to_host(self):
        return np.array(self)

    def is_c_contiguous(self):
        return self.flags.c_contiguous


def _fake_device_array(array) -> _HostDeviceArray:
    return np.ascontiguousarray(array).view(_HostDeviceArray)


class _Compiler:
    """Stands in for ``kernel[grid, block]``: compiles instead of launching."""

    def __init__(self):
        self.results: dict = {}

    def launcher(self, dispatcher):
        def launch(*args):
            import numba
            from numba import cuda

            sig = tuple(numba.typeof(np.asarray(a) if isinstance(a, np.ndarray) else a)
                        for a in args)
            key = (dispatcher.py_func, sig)
            if key in self.results:
                return
            name = dispatcher.py_func.__qualname__.replace(".<locals>", "")
            start = time.perf_counter()
            try:
                cuda.compile_ptx(dispatcher.py_func, sig, cc=TARGET_CC)
            except Exception as error:  # report every failure, then keep going
                self.results[key] = False
                print(f"FAILED {name}{sig}\n{error}\n", flush=True)
                return
            self.results[key] = True
            print(f"ok {name:45s} {time.perf_counter() - start:5.1f}s", flush=True)

        return launch


def _exercise_every_kernel(K) -> None:
    """Call each public function, reaching every kernel at least once.

    Kernels whose code depends on the dtype (shared-memory and local arrays) are
    compiled for float32 and float64; the elementwise ops, whose typing is the same for
    both, for float32, integers and bools only (each compilation takes a while).
    """
    from tinygrad_lite.kernels.cuda.conv import THIN_TILES

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        a, b = rng.random((3, 4)).astype(dtype), rng.random((4, 5)).astype(dtype)
        K.matmul(a, b)  # the strided kernel
        K.matmul(a, b, kernel="generic")
        K.matmul(a, b, tiles=K.GemmTiles(128, 128, 8, 8, 8))
        x, w = rng.random((2, 3, 6, 6)).astype(dtype), rng.random((4, 3, 3, 3)).astype(dtype)
        y = K.conv2d(x, w, 1, 1)
        for channels in (20, 40):  # the narrow and the square tiles (4 uses the thin ones)
            K.conv2d(x, rng.random((channels, 3, 3, 3)).astype(dtype), 1, 1)
        K.conv2d(x, w, 1, 1, tiles=THIN_TILES)
        for kernel in ("implicit", "generic"):  # the implicit GEMM and the index functions
            K.conv2d(x, w, 1, 1, kernel=kernel)
            K.conv2d_backward_input(y, w, x.shape, 1, 1, kernel=kernel)
            K.conv2d_backward_weight(y, x, w.shape, 1, 1, splits=2, kernel=kernel)
        out, idx = K.max_pool2d(x, 2)
        K.max_pool2d_backward(out, idx, x.shape)
        K.max_pool2d_backward(out, idx, x.shape, 2, 2)
        K.avg_pool2d(x, 2)
        K.avg_pool2d_backward(out, x.shape, 2)
        if dtype == np.float32:
            for op in K.UNARY.values():
                op(a)
            for op in K.BINARY.values():
                op(a, b[0, :4])
            K.where(a > 0, a, 0.0)
            # the fast path's kernels: device arrays of one shape, 1-D and 2-D, scalars
            for d in (K.to_device(a), K.to_device(a[0])):
                K.exp(d)
                K.relu(d)
                K.cast(d, np.float64)
                for left, right in ((d, d), (d, 2.0), (3.0, d)):
                    K.add(left, right)
                    K.lt(left, right)
        for op in (K.reduce_sum, K.reduce_max, K.reduce_min, K.argmax, K.argmin):
            op(a, 1)
            op(rng.random((2, 50)).astype(dtype), 1)
        K.reduce_sum(rng.random((3000, 40)).astype(dtype), 0)
        K.gather(a, np.array([0, 3, 5]))
        K.scatter_add(7, np.array([0, 3, 3]), np.ones(3, dtype))
        K.setitem(K.to_device(a), ([0, 1], [1, 2]), 1.0)
    for dtype in (np.int64, np.bool_):
        ints = np.arange(6).astype(dtype).reshape(2, 3)
        K.cast(ints, np.float32)
        K.reduce_sum(ints, 1)
        K.reduce_max(ints, 1)
        K.argmax(ints, 1)
        K.neg(ints)
        K.exp(ints)
        K.add(ints, 1)
        if dtype != np.bool_:  # atomics exist for ints and floats, not bools
            K.scatter_add(3, np.array([0, 1]), np.ones(2, dtype))
    K.full((2,), 1.5, np.float32)
    K.cast(np.ones(2), np.bool_)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("unset NUMBA_ENABLE_CUDASIM: the simulator cannot compile PTX")
        return 2
    libdevice = find_libdevice()
    if libdevice is None:
        print("no CUDA toolkit found (set CUDA_HOME to a directory with nvvm/libdevice)")
        return 2
    _patch_numba_for_offline_compilation(libdevice)
    if "--ptx-report" in argv:
        return ptx_report()
    from numba import cuda
    from numba.cuda.dispatcher import CUDADispatcher

    compiler = _Compiler()
    cuda.to_device = lambda array, *args, **kwargs: _fake_device_array(np.asarray(array))
    cuda.device_array = lambda shape, dtype=np.float64, *args, **kwargs: _fake_device_array(
        np.zeros(shape, dtype=dtype))
    CUDADispatcher.__getitem__ = lambda self, config: compiler.launcher(self)

    import tinygrad_lite.kernels.cuda as K

    _exercise_every_kernel(K)
    failed = sum(1 for ok in compiler.results.values() if not ok)
    print(f"{len(compiler.results)} kernel specialisations compiled to PTX "
          f"for sm_{TARGET_CC[0]}{TARGET_CC[1]}, {failed} failed")
    return 1 if failed else 0



# ---------------------------------------------------------------- PTX report


def _k_step_instructions(ptx: str) -> list[str]:
    """The instructions of a GEMM kernel's k-step: from the first ``bar.sync`` to the
    second (the prefetch of the next slabs and the slab multiply, in both kernels)."""
    body = ptx.split("bar.sync", 2)[1] if ptx.count("bar.sync") >= 2 else ""
    lines = [line.strip() for line in body.splitlines()[1:]]
    return [line.split()[0] for line in lines
            if line and not line.startswith(("$", "//", "{", "}", ".")) and line[0].isalpha()]


def _ptxas_usage(ptx: str) -> str:
    """Registers and spills from ``ptxas -v``, or a note when ptxas is not installed."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("ptxas") is None:
        return "(ptxas not found)"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as handle:
        handle.write(ptx)
    result = subprocess.run(["ptxas", f"-arch=sm_{REPORT_CC[0]}{REPORT_CC[1]}", "-v",
                             handle.name, "-o", os.devnull], capture_output=True, text=True)
    os.unlink(handle.name)
    # ptxas prints "... Used 128 registers, ..." and "... 0 bytes spill stores, ..."
    lines = result.stderr.splitlines()
    used = [line.split("Used", 1)[1].strip() for line in lines if "Used" in line]
    spills = [line.rsplit(":", 1)[-1].strip() for line in lines if "spill" in line]
    return "; ".join(used + spills) or result.stderr.strip()[:200]


REPORT_CC = (9, 0)
"""Compute capability of the PTX report (an H100/H200)."""


def ptx_report() -> int:
    """Print, for the GEMM and conv kernels, the FMA share of one k-step's PTX and the
    register use: the numbers behind the tile choices in gemm.py and conv.py."""
    import numba
    from numba import cuda

    from tinygrad_lite.kernels.cuda import conv, conv_gemm, gemm

    array = numba.float32[::1]
    cases = [(f"strided GEMM {tuple(t)}", gemm._build_strided_gemm_kernel, t,
              (array, array, array, numba.types.UniTuple(numba.int64, 8), numba.int64,
               numba.int64, numba.int64))
             for t in (gemm.SMALL_TILES, gemm.LARGE_TILES)]
    cases += [(f"implicit conv {tuple(t)}", conv_gemm._build_kernel, t,
               (array, array, array, numba.int64[::1]))
              for t in (gemm.SMALL_TILES, conv.NARROW_TILES, conv.SLIM_TILES,
                        conv.SQUARE_SMALL_TILES)]
    print(f"PTX for sm_{REPORT_CC[0]}{REPORT_CC[1]}, float32; a k-step = first to second "
          "bar.sync")
    for name, build, tiles, signature in cases:
        kernel = build(np.dtype(np.float32), tiles)
        ptx, _ = cuda.compile_ptx(kernel.dispatcher.py_func, signature, cc=REPORT_CC)
        step = _k_step_instructions(ptx)
        fma = sum(op.startswith("fma") for op in step)
        shared = sum(op.startswith("ld.shared") for op in step)
        share = fma / len(step) if step else 0.0
        print(f"  {name:34s} k-step: {len(step):4d} instructions, {fma:4d} FMA ({share:4.0%}), "
              f"{shared:3d} shared loads | {_ptxas_usage(ptx)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

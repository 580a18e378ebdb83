"""The lean kernel launch (kernels/cuda/launch.py): argument packing and both paths.

The packing tests need no GPU: they check the parameter layout against the one
numba-cuda's ``_Kernel._prepare_args`` produces. The launch tests run everywhere; in
the simulator (and with ``TINYGRAD_LITE_CUDA_LAUNCH=numba``) LeanKernel takes Numba's
path, on a real GPU the second call of a signature takes the lean path, and both must
give Numba's results.
"""

import ctypes
import os

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

from numba import cuda  # noqa: E402

from tinygrad_lite.kernels.cuda import launch  # noqa: E402

pytestmark = pytest.mark.cuda
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


class FakeDeviceArray:
    """Just the attributes the packer reads from a Numba device array."""

    def __init__(self, shape, dtype, pointer, c_contiguous=True):
        self.shape = shape
        self.ndim = len(shape)
        self.dtype = np.dtype(dtype)
        self.size = int(np.prod(shape))
        self.strides = tuple(np.empty(shape, dtype).strides)
        self.flags = {"C_CONTIGUOUS": c_contiguous}
        self.device_ctypes_pointer = ctypes.c_void_p(pointer)

    def copy_to_host(self):  # makes it a "device array" for views.is_device_array
        raise AssertionError("not needed")

    def reshape(self, shape):
        return FakeDeviceArray(shape, self.dtype, self.device_ctypes_pointer.value)


def test_arrays_pack_as_numba_lays_them_out():
    array = FakeDeviceArray((3, 4), np.float32, 4096)
    signature = launch._signature([array])
    assert signature == (("<f4", 2),)
    # meminfo, parent, size, itemsize, data pointer, shape..., strides in bytes...
    assert launch._pack([array], signature) == [0, 0, 12, 4, 4096, 3, 4, 16, 4]


def test_flat_arrays_pack_as_1d_without_a_reshape():
    array = FakeDeviceArray((2, 3, 4), np.float64, 8192)
    signature = launch._signature([launch.flat(array)])
    assert signature == (("<f8", "flat"),)
    assert launch._pack([launch.flat(array)], signature) == [0, 0, 24, 8, 8192, 24, 8]
    # Numba's own path gets a real 1-D array: the reshape the lean path avoids
    (reshaped,) = launch._numba_args([launch.flat(array)])
    assert reshaped.shape == (24,)
    strided = FakeDeviceArray((2, 3), np.float32, 0, c_contiguous=False)
    assert launch._signature([launch.flat(strided)]) is None


def test_scalars_and_tuples_pack_as_numba_passes_them():
    args = [7, 2.5, np.float32(1.5), np.int32(-3), (1, 2)]
    signature = launch._signature(args)
    assert signature == ("<i8", "<f8", "<f4", "<i4", ("tuple", 2))
    params = launch._pack(args, signature)
    kinds = [type(p) for p in params]
    assert kinds == [ctypes.c_int64, ctypes.c_double, ctypes.c_float, ctypes.c_int32,
                     ctypes.c_int64, ctypes.c_int64]
    assert [p.value for p in params] == [7, 2.5, 1.5, -3, 1, 2]


@pytest.mark.parametrize("arg", [True, np.bool_(True), [1, 2], (1, 2.0), np.int8(3),
                                 FakeDeviceArray((2, 3), np.float32, 0, c_contiguous=False)],
                         ids=["bool", "numpy bool", "list", "mixed tuple", "int8",
                              "strided array"])
def test_unsupported_arguments_take_numbas_path(arg):
    assert launch._signature([arg]) is None


def test_lean_path_is_off_in_the_simulator_and_on_request(monkeypatch):
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    assert not launch.lean_launch_enabled()
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM")
    monkeypatch.setenv("TINYGRAD_LITE_CUDA_LAUNCH", "numba")
    assert not launch.lean_launch_enabled()
    monkeypatch.setenv("TINYGRAD_LITE_CUDA_LAUNCH", "lean")
    assert launch.lean_launch_enabled()


@launch.lean_kernel
def _axpy_2d(out, x, y, alpha, offsets):
    i = cuda.grid(1)
    cols = out.shape[1]
    if i < out.shape[0] * cols:
        r = i // cols
        c = i - r * cols
        out[r, c] = alpha * x[r, c] + y[r, c] + offsets[0] * r + offsets[1] * c


@pytest.mark.parametrize("alpha", [2, 0.5, np.float32(0.25)], ids=["int", "float", "float32"])
def test_lean_launch_gives_numbas_results(alpha):
    """Three calls per signature: the first compiles through Numba, the later ones take
    the lean path on a GPU (Numba's in the simulator); all must agree with numpy."""
    rng = np.random.default_rng(0)
    x, y = rng.random((5, 7)).astype(np.float32), rng.random((5, 7)).astype(np.float32)
    dx, dy = cuda.to_device(x), cuda.to_device(y)
    rows, cols = np.indices(x.shape)
    for offsets in [(0, 0), (1, 2), (3, -1)]:
        out = cuda.device_array(x.shape, np.float32)
        _axpy_2d[1, 64](out, dx, dy, alpha, offsets)
        want = np.float32(alpha) * x + y + offsets[0] * rows + offsets[1] * cols
        np.testing.assert_allclose(out.copy_to_host(), want, rtol=1e-6, atol=1e-5)
    signature = launch._signature([out, dx, dy, alpha, offsets])
    if SIMULATOR:
        assert not launch.lean_launch_enabled()
    else:  # the signature was compiled and its function handle kept for the lean path
        assert _axpy_2d._functions[signature] is not None


def test_stats_count_the_signatures_of_each_path():
    before = launch.lean_launch_stats()
    kernel = launch.LeanKernel(dispatcher=None)
    # two signatures with a kept function handle (lean), one that fell back to Numba's path
    kernel._functions = {("a",): object(), ("b",): object(), ("c",): None}
    after = launch.lean_launch_stats()
    assert after == {"lean": before["lean"] + 2, "numba": before["numba"] + 1}
    del kernel  # the registry holds kernels weakly
    assert launch.lean_launch_stats() == before

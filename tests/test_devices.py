"""Devices without a GPU: availability, clear errors, and mixing devices.

These run everywhere, with or without the CUDA simulator. Where a test needs "a
tensor on another device" it uses a stand-in backend (numpy arrays that claim to live
on "cuda"), so the error paths of the ops layer are checked on any machine.
"""

import sys

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.backend as backend_module
from tinygrad_lite import Tensor, nn
from tinygrad_lite.backend import get_backend
from tinygrad_lite.backend.numpy_backend import NumpyBackend


class _FakeCudaBackend(NumpyBackend):
    """numpy arrays that say they are on "cuda": enough to test device checks."""

    name = "fake-cuda"
    device = "cuda"


def _on_fake_cuda(data) -> Tensor:
    return Tensor._make(np.asarray(data, dtype=np.float32), _FakeCudaBackend())


def test_is_available_is_a_bool():
    assert isinstance(tl.cuda.is_available(), bool)


def test_is_available_is_false_when_numba_cuda_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba.cuda", None)  # import now raises ImportError
    if "numba" in sys.modules:  # and `from numba import cuda` cannot find it either
        monkeypatch.delattr(sys.modules["numba"], "cuda", raising=False)
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    assert tl.cuda.is_available() is False


def test_is_available_survives_a_broken_driver(monkeypatch):
    numba_cuda = pytest.importorskip("numba.cuda")

    def broken():
        raise OSError("libcuda.so: cannot open shared object file")

    import numba

    monkeypatch.setattr(numba_cuda, "is_available", broken)
    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", 0)
    assert tl.cuda.is_available() is False


def test_cpu_backend_and_unknown_devices():
    assert get_backend("cpu").device == "cpu"
    assert get_backend(None).device == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'.*'cpu' or 'cuda'"):
        get_backend("tpu")
    with pytest.raises(ValueError, match="unknown device"):
        Tensor([1.0], device="tpu")


@pytest.fixture
def no_gpu(monkeypatch):
    """Pretend no GPU is usable (also when the simulator is on)."""
    monkeypatch.setattr(backend_module, "_cuda_backend", None)
    try:
        from tinygrad_lite.backend import cuda_backend
    except ImportError:
        return  # numba-cuda missing: requesting CUDA fails anyway
    monkeypatch.setattr(cuda_backend.K, "is_available", lambda: False)


def _assert_helpful(error):
    message = str(error.value)
    assert "CUDA" in message
    assert "NUMBA_ENABLE_CUDASIM=1" in message  # says how to get going without a GPU
    assert "is_available" in message or "pip install" in message


def test_requesting_cuda_without_a_gpu_says_how_to_fix_it(no_gpu):
    with pytest.raises(RuntimeError) as error:
        get_backend("cuda")
    _assert_helpful(error)
    with pytest.raises(RuntimeError) as error:
        Tensor([1.0, 2.0], device="cuda")
    _assert_helpful(error)
    with pytest.raises(RuntimeError) as error:
        Tensor([1.0, 2.0]).to("cuda")
    _assert_helpful(error)
    with pytest.raises(RuntimeError) as error:
        tl.zeros(2, device="cuda")
    _assert_helpful(error)
    model = nn.Linear(2, 2)
    with pytest.raises(RuntimeError) as error:
        model.to("cuda")
    _assert_helpful(error)
    assert all(p.device == "cpu" for p in model.parameters())


def test_requesting_cuda_without_numba_cuda_says_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(backend_module, "_cuda_backend", None)
    monkeypatch.setitem(sys.modules, "tinygrad_lite.backend.cuda_backend", None)
    with pytest.raises(RuntimeError) as error:
        get_backend("cuda")
    _assert_helpful(error)


def test_mixing_devices_names_both_devices():
    cpu = Tensor([1.0, 2.0], requires_grad=True)
    gpu = _on_fake_cuda([3.0, 4.0])
    for op in (lambda: cpu + gpu, lambda: gpu * cpu, lambda: cpu @ gpu,
               lambda: tl.where(cpu > 0, cpu, gpu), lambda: tl.cat([cpu, gpu]),
               lambda: cpu.maximum(gpu)):
        with pytest.raises(RuntimeError) as error:
            op()
        message = str(error.value)
        assert "cpu" in message and "cuda" in message, message


def test_mixing_devices_in_place_and_in_indices():
    cpu = Tensor([1.0, 2.0])
    gpu = _on_fake_cuda([3.0, 4.0])
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        cpu.add_(gpu)
    index = Tensor._make(np.array([0]), _FakeCudaBackend())
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        cpu[index] = 0.0


def test_to_cpu_is_a_no_op_on_the_cpu():
    x = Tensor([1.0, 2.0])
    assert x.to("cpu") is x
    model = nn.Linear(2, 2)
    weight = model.weight
    assert model.to("cpu") is model and model.weight is weight

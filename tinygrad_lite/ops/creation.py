"""Factories: tensors filled with constants, ranges and random numbers."""

from __future__ import annotations

from ..autograd.tensor import Tensor
from ..backend import get_backend
from .movement import _shape_arg


def _dtype(dtype, default="float32"):
    return get_backend("cpu").dtype(default if dtype is None else dtype)


def _leaf(data, backend, requires_grad) -> Tensor:
    tensor = Tensor._make(data, backend)
    if requires_grad:
        tensor.requires_grad = True
    return tensor


def _check_shape(opname, shape):
    if any(n < 0 for n in shape):
        raise ValueError(f"{opname}: negative dimension in shape {shape}")
    return shape


def full(shape, fill_value, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    shape = _check_shape("full", _shape_arg((shape,)))
    if dtype is None:
        dtype = "int64" if isinstance(fill_value, int) and not isinstance(
            fill_value, bool) else ("bool" if isinstance(fill_value, bool) else "float32")
    backend = get_backend(device)
    return _leaf(backend.full(shape, fill_value, _dtype(dtype)), backend, requires_grad)


def zeros(*shape, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    shape = _check_shape("zeros", _shape_arg(shape))
    backend = get_backend(device)
    return _leaf(backend.zeros(shape, _dtype(dtype)), backend, requires_grad)


def ones(*shape, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    shape = _check_shape("ones", _shape_arg(shape))
    backend = get_backend(device)
    return _leaf(backend.full(shape, 1, _dtype(dtype)), backend, requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False, device=None) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad,
                 device=device or t.device)


def ones_like(t: Tensor, dtype=None, requires_grad=False, device=None) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad,
                device=device or t.device)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad,
                device=device or t.device)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """Evenly spaced values in [start, stop), like numpy; int64 unless a float is involved."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    if dtype is None:
        dtype = "int64" if all(isinstance(v, int) for v in (start, stop, step)) else "float32"
    backend = get_backend(device)
    return _leaf(backend.arange(start, stop, step, _dtype(dtype)), backend, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    _check_shape("eye", _shape_arg((n, n if m is None else m)))
    backend = get_backend(device)
    return _leaf(backend.eye(n, n if m is None else m, _dtype(dtype)), backend, requires_grad)


def randn(*shape, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """Standard normal samples from the library's seeded generator (``tl.manual_seed``)."""
    shape = _check_shape("randn", _shape_arg(shape))
    backend = get_backend(device)
    return _leaf(backend.randn(shape, _dtype(dtype)), backend, requires_grad)


def rand(*shape, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """Uniform samples in [0, 1) from the library's seeded generator."""
    shape = _check_shape("rand", _shape_arg(shape))
    backend = get_backend(device)
    return _leaf(backend.rand(shape, _dtype(dtype)), backend, requires_grad)


def tensor(data, requires_grad=False, dtype=None, device="cpu") -> Tensor:
    """``tl.tensor(data)``: the same as ``Tensor(data)`` (PyTorch's spelling)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)

"""Backends: who owns the arrays and how the primitive operations run.

``get_backend("cpu")`` returns the backend new CPU tensors use (numpy by default,
Numba kernels once selected with :func:`set_backend`); ``get_backend("cuda")`` the
Numba CUDA backend, created on first use. All CPU backends share numpy arrays, so
tensors made under different CPU backends still work together.
"""

from __future__ import annotations

from .numpy_backend import NumpyBackend, _install_reference_kernels

_install_reference_kernels(NumpyBackend)

_numpy_backend = NumpyBackend()
_cpu_backend = _numpy_backend
_cuda_backend = None
_CPU_BACKEND_FACTORIES = {"numpy": lambda: _numpy_backend}


def register_cpu_backend(name: str, factory) -> None:
    """Make a CPU backend selectable with ``set_backend(name)`` (factory called lazily)."""
    _CPU_BACKEND_FACTORIES[name] = factory


_numba_backend = None


def _numba_backend_factory():
    """The Numba kernel backend, created (and numba imported) on first selection."""
    global _numba_backend
    if _numba_backend is None:
        from .numba_backend import NumbaBackend

        _numba_backend = NumbaBackend()
    return _numba_backend


register_cpu_backend("numba", _numba_backend_factory)


def set_backend(name: str) -> None:
    """Choose the CPU backend for new tensors: ``"numpy"`` or a registered one (``"numba"``).

    A backend may define ``activate()`` / ``deactivate()``, called when it is selected and
    replaced (the Numba backend uses them to keep numpy's BLAS pool to one thread while
    its own parallel kernels run, so the two thread pools never fight over the cores).
    """
    global _cpu_backend
    if name not in _CPU_BACKEND_FACTORIES:
        choices = sorted(_CPU_BACKEND_FACTORIES)
        raise ValueError(f"unknown backend {name!r}; choose one of {choices}")
    chosen = _CPU_BACKEND_FACTORIES[name]()
    if chosen is _cpu_backend:
        return
    if hasattr(_cpu_backend, "deactivate"):
        _cpu_backend.deactivate()
    if hasattr(chosen, "activate"):
        chosen.activate()
    _cpu_backend = chosen


def get_backend_name() -> str:
    return _cpu_backend.name


def get_backend(device: str | None = "cpu"):
    """The backend that owns arrays on ``device`` ("cpu" or "cuda")."""
    if device is None or device == "cpu":
        return _cpu_backend
    if device == "cuda" or (isinstance(device, str) and device.startswith("cuda")):
        return _get_cuda_backend()
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def _get_cuda_backend():
    global _cuda_backend
    if _cuda_backend is None:
        try:
            from .cuda_backend import CudaBackend
        except ImportError as error:
            raise RuntimeError(
                "CUDA was requested but the CUDA backend cannot be loaded "
                f"({error}). Install the GPU extra with `pip install tinygrad_lite[cuda]` "
                "on a machine with an NVIDIA GPU (or set NUMBA_ENABLE_CUDASIM=1 to use "
                "the simulator).") from error
        _cuda_backend = CudaBackend()
    return _cuda_backend

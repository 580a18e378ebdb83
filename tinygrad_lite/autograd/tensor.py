"""``Tensor``: an array on a backend, plus what autograd needs to know about it.

A Tensor holds ``data`` (an array owned by its ``backend``), whether it
``requires_grad``, its accumulated ``grad``, and, if an op produced it while
recording, ``_node``: the :class:`~tinygrad_lite.autograd.function.Function`
instance that made it. The arithmetic, math and shape methods are attached by the
ops layer (``tinygrad_lite.ops``); this module is only the container and the
autograd entry points (``backward``, hooks, in-place updates with version counting).
"""

from __future__ import annotations

from ..backend import get_backend
from . import engine
from .mode import state


class Tensor:
    """A multi-dimensional array that records the operations applied to it."""

    __slots__ = ("data", "backend", "_requires_grad", "grad", "_node", "_out_index",
                 "_version_box", "_hooks", "_retains_grad", "name", "__weakref__")

    # numpy must hand binary operations with a Tensor back to the Tensor's methods
    # (``np_array * tensor`` -> ``Tensor.__rmul__``) instead of broadcasting over it.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None, device=None):
        if isinstance(data, Tensor):
            source_backend = data.backend
            array = source_backend.copy(data.data)
            if dtype is not None:
                array = source_backend.astype(array, source_backend.dtype(dtype))
            if device is not None and get_backend(device).device != source_backend.device:
                array = _transfer(array, source_backend, get_backend(device))
                source_backend = get_backend(device)
            backend = source_backend
        else:
            backend = get_backend(device)
            host = get_backend("cpu")
            array = host.asarray(data, dtype)
            if backend is not host:
                array = backend.from_host(array)
        self.data = array
        self.backend = backend
        self._requires_grad = False
        self.grad = None
        self._node = None
        self._out_index = 0
        self._version_box = None
        self._hooks = None
        self._retains_grad = False
        self.name = None
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _make(cls, data, backend) -> Tensor:
        """Wrap an array an op just computed; the fast path every op uses."""
        tensor = object.__new__(cls)
        tensor.data = data
        tensor.backend = backend
        tensor._requires_grad = False
        tensor.grad = None
        tensor._node = None
        tensor._out_index = 0
        tensor._version_box = None
        tensor._hooks = None
        tensor._retains_grad = False
        tensor.name = None
        return tensor

    # ------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def size(self) -> int:
        count = 1
        for n in self.data.shape:
            count *= n
        return count

    def numel(self) -> int:
        return self.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and not self.is_floating_point():
            raise RuntimeError(
                f"only floating-point tensors can require grad, this one is {self.dtype}: "
                "create it with a float dtype, e.g. Tensor(data, dtype='float32')")
        if not flag and self._node is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf tensor; "
                               "use .detach() to get a tensor outside the graph")
        self._requires_grad = bool(flag)

    @property
    def is_leaf(self) -> bool:
        """True for tensors the user made (not produced by a recorded op)."""
        return self._node is None

    @property
    def grad_fn(self):
        """The graph node (a Function instance) that produced this tensor, or None."""
        return self._node

    def is_floating_point(self) -> bool:
        return self.data.dtype.kind == "f"

    def __len__(self) -> int:
        if not self.data.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # Identity semantics: == builds a comparison tensor, so hashing must not use it.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.size} elements is "
                               "ambiguous; use .any(), .all() or compare .item()")
        return bool(self.item())

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        text = repr(self.numpy()).replace("array(", "tensor(", 1)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn={type(self._node).__name__}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        if extras:
            text = text[:-1] + ", " + ", ".join(extras) + ")"
        return text

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def __getstate__(self):
        return {"data": self.numpy(), "requires_grad": self._requires_grad,
                "device": self.device}

    def __setstate__(self, state_dict):
        # Tensor.__init__ explicitly: subclasses (Parameter) have other signatures.
        Tensor.__init__(self, state_dict["data"], requires_grad=state_dict["requires_grad"],
                        device=state_dict["device"])

    # ------------------------------------------------------------- conversion
    def numpy(self):
        """A host numpy copy of the data (never shares memory with the tensor)."""
        return self.backend.to_host(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.backend.item(self.data)

    def detach(self) -> Tensor:
        """The same data as a new leaf outside the graph (shares memory, like PyTorch).

        It also shares the version counter: an in-place change through the detached
        tensor is seen by any node that saved the original.
        """
        return Tensor._make(self.data, self.backend)._share_version_with(self)

    def _private_copy(self) -> Tensor:
        """A detached tensor owning a fresh copy of the data."""
        return Tensor._make(self.backend.copy(self.data), self.backend)

    def detach_(self) -> Tensor:
        self._node = None
        self._requires_grad = False
        return self

    # ---------------------------------------------------------------- autograd
    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · gradient into ``.grad`` of every leaf."""
        engine.run_backward((self,), (gradient,), retain_graph, create_graph)

    # The engine asks the output for these two, so another value type (the scalar
    # engine of tl.teach) can run through the same backward loop.
    def _unit_gradient(self) -> Tensor:
        data = self.data
        return Tensor._make(self.backend.full(data.shape, 1, data.dtype), self.backend)

    def _as_gradient(self, gradient) -> Tensor:
        if isinstance(gradient, Tensor):
            return gradient
        return Tensor(gradient, dtype=self.dtype, device=self.device)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed.

        The hook may return a replacement gradient. Returns a handle whose
        ``remove()`` unregisters it.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)

    def retain_grad(self) -> None:
        """Also store ``.grad`` on this non-leaf tensor during backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    # ---------------------------------------------------- in-place modification
    def _check_inplace(self, opname: str) -> None:
        if state.grad_enabled and self._requires_grad:
            if self._node is None:
                raise RuntimeError(
                    f"{opname}: a leaf tensor that requires grad cannot be modified in place "
                    "while gradients are recorded; wrap the update in `with tl.no_grad():`")
            raise RuntimeError(
                f"{opname}: in-place modification of a tensor produced by a recorded op "
                "is not supported; write the out-of-place form (x = x + y)")

    # Version counting. A tensor's version counts the in-place changes made to its
    # data; a node records the versions of what it saved and refuses to backward if
    # they moved. Views (detach, reshape, transpose, basic slicing) share their base's
    # memory, so they share one counter: a one-element list, created on first need so
    # the common case (no views, no in-place ops) allocates nothing.
    @property
    def _version(self) -> int:
        box = self._version_box
        return 0 if box is None else box[0]

    @_version.setter
    def _version(self, value: int) -> None:
        self._shared_version_box()[0] = value
        state.inplace_count += 1

    def _shared_version_box(self) -> list:
        if self._version_box is None:
            self._version_box = [0]
        return self._version_box

    def _share_version_with(self, base: Tensor) -> Tensor:
        """Make this tensor (a view of ``base``'s memory) count versions with ``base``."""
        self._version_box = base._shared_version_box()
        return self

    def _bump_version(self) -> None:
        box = self._version_box
        if box is None:  # the first in-place change: version 0 -> 1
            self._version_box = [1]
        else:
            box[0] += 1
        state.inplace_count += 1

    def _inplace(self, opname, backend_op, other) -> Tensor:
        self._check_inplace(opname)
        value = other.data if isinstance(other, Tensor) else other
        if isinstance(other, Tensor) and other.device != self.device:
            raise RuntimeError(f"{opname}: tensors are on different devices "
                               f"({self.device} and {other.device})")
        result = backend_op(self.data, value)
        if tuple(result.shape) != self.shape:
            raise ValueError(f"{opname}: the result shape {tuple(result.shape)} does not match "
                             f"the tensor's shape {self.shape}")
        self.backend.setitem(self.data, Ellipsis, result)
        self._bump_version()
        return self

    def add_(self, other, alpha=1) -> Tensor:
        if alpha != 1:
            other = other * alpha
        return self._inplace("add_", self.backend.add, other)

    def sub_(self, other) -> Tensor:
        return self._inplace("sub_", self.backend.sub, other)

    def mul_(self, other) -> Tensor:
        return self._inplace("mul_", self.backend.mul, other)

    def div_(self, other) -> Tensor:
        return self._inplace("div_", self.backend.div, other)

    def copy_(self, source) -> Tensor:
        """Overwrite the data with ``source`` (broadcast to this shape, cast to this dtype)."""
        if not isinstance(source, Tensor):
            source = Tensor(source, dtype=self.dtype, device=self.device)
        return self._inplace("copy_", lambda _, value: self.backend.astype(
            self.backend.broadcast_to(value, self.shape), self.dtype), source)

    def zero_(self) -> Tensor:
        return self._inplace("zero_", lambda x, _: self.backend.zeros(self.shape, self.dtype),
                             None)

    def fill_(self, value) -> Tensor:
        return self._inplace("fill_", lambda x, v: self.backend.full(self.shape, v, self.dtype),
                             value)

    def __setitem__(self, index, value) -> None:
        """``t[index] = value``, in place (counts as a modification of ``t``)."""
        self._check_inplace("__setitem__")
        if isinstance(value, Tensor):
            if value._requires_grad and state.grad_enabled:
                raise RuntimeError(
                    "__setitem__: assigning a tensor that requires grad into another tensor "
                    "is not recorded; build the result with tl.where / tl.cat instead")
            value = value.data
        try:
            self.backend.setitem(self.data, index_data(index, self.backend), value)
        except IndexError as error:
            raise IndexError(f"__setitem__: {error} (tensor shape {self.shape})") from None
        except ValueError as error:  # the value does not broadcast to the indexed region
            raise ValueError(f"__setitem__: {error} (tensor shape {self.shape}, value shape "
                             f"{getattr(value, 'shape', ())})") from None
        self._bump_version()


def index_data(index, backend):
    """Replace Tensors (and lists) inside an index by arrays the backend can index with."""
    if isinstance(index, tuple):
        return tuple(index_data(part, backend) for part in index)
    if isinstance(index, Tensor):
        if index.backend.device != backend.device:
            raise RuntimeError(f"an index on {index.device} cannot index a tensor on "
                               f"{backend.device}")
        return index.data
    if isinstance(index, list):
        return backend.from_host(get_backend("cpu").asarray(index))
    return index


def _transfer(array, source, target):
    """Move an array between backends through host memory."""
    return target.from_host(source.to_host(array))


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)

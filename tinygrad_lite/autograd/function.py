"""``Function``: one differentiable operation, and the graph node it leaves behind.

A subclass defines a ``forward`` and a ``backward`` side by side::

    class Square(tl.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad          # dL/dx = dL/dy * dy/dx

    y = Square.apply(x)

``apply`` runs ``forward`` without recording (its inner ops are implementation
detail), and if any input requires grad it makes the ``ctx`` object the output's
graph node: the node remembers its inputs (edges to earlier nodes) and what forward
saved. Backward formulas written with Tensor ops are themselves differentiable, which
is all ``create_graph=True`` needs for gradients of gradients.
"""

from __future__ import annotations

import itertools
import os
import traceback
import weakref

from .mode import state

# Every recorded node takes the next number. A node's inputs existed before it was
# recorded, so a node's number is larger than the numbers of all nodes it depends on:
# visiting nodes from the largest number down is a valid order for backward
# (engine.py), and no graph search is needed to find it.
_sequence = itertools.count()


class Function:
    """Base class of every op; an instance is the ``ctx`` and the graph node."""

    # Filled in by apply(). Slots keep each node small: a long unrolled graph has many.
    __slots__ = ("inputs", "needs_input_grad", "outputs", "_seq", "__dict__", "__weakref__")

    # Defaults, read from the class until an instance sets its own: no __init__ needs
    # to run for every node.
    _saved = ()            # what forward saved (save_for_backward)
    _saved_versions = ()   # their version counters at that moment
    _saved_at = 0          # and state.inplace_count at that moment
    _saved_output = False  # True if one of them is an output (held weakly, see _attach)
    _freed = False         # True once backward has released the saved tensors
    source = None          # the user's source line, recorded under detect_anomaly

    #: Set to True by ops whose ``backward`` (without ``create_graph``) returns only
    #: freshly allocated gradients that nothing else references. The engine may then
    #: store such a gradient in a leaf's ``.grad`` as it is instead of copying it first
    #: (a shared gradient must be copied: ``.grad`` may later be changed in place).
    fresh_gradients = False

    # ---------------------------------------------------------------- user API
    @staticmethod
    def forward(ctx, *args):  # pragma: no cover - abstract
        raise NotImplementedError("a Function subclass must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError("a Function subclass must define backward(ctx, *grads)")

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors for backward; later in-place changes to them are detected."""
        self._saved = tensors
        # The usual saved tensor was never modified in place and has no counter box
        # yet: version 0, read here without a call (this runs for every node).
        self._saved_versions = tuple([0 if getattr(t, "_version_box", _NO_BOX) is None
                                      else _version_of(t) for t in tensors])
        self._saved_at = state.inplace_count

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(
                f"Trying to backward through the graph of {type(self).__name__} a second time: "
                "its saved tensors were freed after the first backward. Pass "
                "retain_graph=True to the first backward() if you need to call it twice.")
        tensors = self._saved
        if self._saved_output:  # the output is saved as a weak reference: resolve it
            tensors = tuple([t() if type(t) is weakref.ref else t for t in tensors])
        if state.inplace_count != self._saved_at:  # something changed in place since:
            self._check_versions(tensors)          # was it one of ours?
        return tensors

    def _check_versions(self, tensors) -> None:
        """Raise if a saved tensor's version moved since ``save_for_backward``."""
        for tensor, version in zip(tensors, self._saved_versions):
            if _version_of(tensor) != version:
                raise RuntimeError(
                    f"A tensor of shape {tensor.shape} saved by {type(self).__name__} for "
                    f"backward was modified in place (version {version} -> {tensor._version})"
                    ". Its gradient would be wrong; use an out-of-place op (x = x + y, or "
                    "x += y, which rebinds x to a new tensor) instead of x.add_(y), or "
                    ".clone() the tensor before modifying it.")

    # ------------------------------------------------------------------ apply
    @classmethod
    def apply(cls, *args):
        """Run ``forward`` on ``args`` and, if needed, record the node in the graph."""
        ctx = cls()
        if not state.grad_enabled:  # the fast path: nothing to record, nothing to restore
            outputs = cls.forward(ctx, *args)
            if state.anomaly_enabled:
                _check_forward_anomaly(cls, outputs)
            return outputs
        # One pass over the arguments answers both "record at all?" and, per input,
        # "does it need a gradient?" (non-Tensor arguments such as axes never do).
        needs = tuple([getattr(arg, "_requires_grad", False) for arg in args])
        state.grad_enabled = False  # forward's inner ops are implementation detail
        try:
            outputs = cls.forward(ctx, *args)
        finally:
            state.grad_enabled = True
        if state.anomaly_enabled:
            _check_forward_anomaly(cls, outputs)
        if True in needs:  # link the node to its inputs, then to its output(s)
            ctx.inputs = args
            ctx.needs_input_grad = needs
            ctx._seq = next(_sequence)
            if state.anomaly_enabled:
                ctx.source = _user_source_line()
            if type(outputs) is tuple:
                ctx._attach_many(outputs)
            else:
                ctx._attach(outputs)
        return outputs

    def _attach(self, out) -> None:
        """Make this ctx the node of its one output ``out``."""
        if getattr(out, "_requires_grad", None) is None:
            raise TypeError(f"{type(self).__name__}.forward must return Tensors, "
                            f"got {type(out).__name__}")
        if out.data.dtype.kind == "f":  # integer/bool outputs carry no gradient
            out._node = self
            out._requires_grad = True
        # The output is held weakly: a saved output would otherwise make a reference
        # cycle (output -> node -> output) that only the cyclic GC can free.
        ref = weakref.ref(out)
        self.outputs = (ref,)
        for saved in self._saved:
            if saved is out:
                self._saved = tuple([ref if t is out else t for t in self._saved])
                self._saved_output = True
                break

    def _attach_many(self, outs: tuple) -> None:
        """``_attach`` for a forward that returned a tuple of outputs."""
        for index, out in enumerate(outs):
            if getattr(out, "_requires_grad", None) is None:
                raise TypeError(f"{type(self).__name__}.forward must return Tensors, "
                                f"got {type(out).__name__}")
            if out.data.dtype.kind == "f":
                out._node = self
                out._out_index = index
                out._requires_grad = True
        self.outputs = refs = tuple([weakref.ref(o) for o in outs])
        # An output nobody used gets a zero gradient of this shape in backward.
        self._output_meta = tuple([(o.data.shape, o.data.dtype, o.backend) for o in outs])
        if self._saved:
            self._saved = tuple([_weak_if_output(t, outs, refs) for t in self._saved])
            self._saved_output = True  # (perhaps: saved_tensors checks each)

    def _zero_output_gradient(self, index: int):
        from .tensor import Tensor

        shape, dtype, backend = self._output_meta[index]
        return Tensor._make(backend.zeros(shape, dtype), backend)

    def _free(self) -> None:
        """Drop what backward needed, so the memory of a used graph is released.

        The edges to the inputs go too: after ``loss.backward()`` the intermediate
        tensors die even while ``loss`` itself is still referenced.
        """
        self._saved = ()
        self.inputs = None
        self._freed = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} node>"

    @property
    def name(self) -> str:
        return type(self).__name__


_NO_BOX = object()


def _version_of(value) -> int:
    """The in-place version of a saved value (0 for anything that has no counter).

    Reads the counter box directly: this runs for every saved tensor of every node. A
    Tensor whose box is still None was never modified in place: version 0.
    """
    box = getattr(value, "_version_box", _NO_BOX)
    if box is None:
        return 0
    if box is not _NO_BOX:
        return box[0]
    return getattr(value, "_version", 0)  # other value types (tl.teach.Scalar), None


def _weak_if_output(tensor, outs, refs):
    """A saved tensor, or the weak reference of it if it is one of the outputs."""
    for out, ref in zip(outs, refs):
        if tensor is out:
            return ref
    return tensor


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_source_line() -> str:
    """The innermost stack frame outside tinygrad_lite: where the user called the op."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "<unknown>"


def _check_forward_anomaly(cls, outputs) -> None:
    for out in outputs if isinstance(outputs, tuple) else (outputs,):
        if not out.backend.all_finite(out.data):
            node = state.backward_node
            if node is not None:  # an op inside some node's backward formula
                raise RuntimeError(
                    f"detect_anomaly: the backward of {type(node).__name__} (created at "
                    f"{node.source}) produced NaN or inf in its {cls.__name__} step")
            raise RuntimeError(
                f"detect_anomaly: the forward of {cls.__name__} produced NaN or inf "
                f"(output shape {out.shape}) at {_user_source_line()}")

"""In-place safety: version counters catch a saved tensor changed before backward (issue 6.2).

Rules tested here (documented in docs/reliability.md):

* every in-place method (``add_ sub_ mul_ div_ copy_ zero_ fill_``, ``t[i] = v``) bumps the
  tensor's version; a node whose saved tensor changed version raises a RuntimeError at
  backward time naming the op (``Mul``, ``Exp``...), never computes a wrong gradient;
* a leaf that requires grad cannot be modified in place while gradients are recorded
  (wrap optimiser-style updates in ``tl.no_grad()``), nor can a non-leaf graph tensor;
* Python's ``x += y`` is *not* in place for Tensors (Tensor defines no ``__iadd__``): it
  rebinds ``x`` to a new tensor, so it can never corrupt a saved tensor;
* ``.data`` is the raw escape hatch: writing through it is not counted (as in PyTorch).
"""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor, nn, optim

INPLACE = {
    "add_": lambda t: t.add_(1.0),
    "sub_": lambda t: t.sub_(1.0),
    "mul_": lambda t: t.mul_(2.0),
    "div_": lambda t: t.div_(2.0),
    "copy_": lambda t: t.copy_(np.full(t.shape, 5.0)),
    "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(3.0),
    "add_-tensor": lambda t: t.add_(tl.ones(*t.shape)),
    "setitem": lambda t: t.__setitem__(0, 7.0),
    "setitem-slice": lambda t: t.__setitem__(slice(None), 7.0),
}


def _f64(*values):
    return Tensor(np.array(values, dtype=np.float64))


@pytest.mark.parametrize("modify", list(INPLACE.values()), ids=list(INPLACE))
def test_modifying_a_saved_input_raises_at_backward_naming_the_op(modify):
    w = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = Tensor([4.0, 5.0, 6.0])          # a constant: Mul saves it for w's gradient
    loss = (w * x).sum()
    version = x._version
    modify(x)
    assert x._version > version
    with pytest.raises(RuntimeError, match=r"saved by Mul for backward was modified in place"):
        loss.backward()
    assert w.grad is None                # nothing was accumulated from a wrong gradient


@pytest.mark.parametrize("modify", list(INPLACE.values()), ids=list(INPLACE))
def test_modifying_a_saved_output_under_no_grad_raises_at_backward(modify):
    x = Tensor([0.5, 1.0, 1.5], requires_grad=True)
    y = x.exp()                          # Exp saves its output y
    loss = y.sum()
    with tl.no_grad():
        modify(y)
    with pytest.raises(RuntimeError, match=r"saved by Exp for backward was modified in place"):
        loss.backward()


def test_modifying_a_saved_leaf_under_no_grad_raises_at_backward():
    w = Tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()                 # Mul saves w (twice)
    with tl.no_grad():
        w.add_(1.0)
    with pytest.raises(RuntimeError, match=r"Mul.*modified in place.*version 0 -> 1"):
        loss.backward()


_W = np.arange(6.0).reshape(3, 2)

INPUT_SAVERS = [
    (lambda x: x.log(), "Log"), (lambda x: x.sin(), "Sin"), (lambda x: x.cos(), "Cos"),
    (lambda x: x.abs(), "Abs"), (lambda x: x.relu(), "ReLU"),
    (lambda x: x.leaky_relu(), "LeakyReLU"),
    (lambda x: x.elu(), "ELU"), (lambda x: x.clip(0.0, 1.0), "Clip"), (lambda x: x / 2.0, "Div"),
    (lambda x: x ** 2, "Pow"), (lambda x: x.max(), "Max"), (lambda x: x.maximum(1.0), "Maximum"),
    (lambda x: x @ Tensor(_W), "MatMul"),
    (lambda x: tl.nn.functional.linear(x, Tensor(_W.T)), "LinearFunction"),
    (lambda x: tl.nn.functional.binary_cross_entropy_with_logits(x, tl.ones(1, 3, dtype="float64")),
     "BinaryCrossEntropyWithLogits"),
    (lambda x: tl.nn.functional.cross_entropy(x, Tensor(np.array([1]))), "SoftmaxCrossEntropy"),
]
OUTPUT_SAVERS = [
    (lambda x: x.exp(), "Exp"), (lambda x: x.sqrt(), "Sqrt"), (lambda x: x.tanh(), "Tanh"),
    (lambda x: x.sigmoid(), "Sigmoid"), (lambda x: tl.nn.functional.sigmoid(x), "SigmoidFunction"),
]


def _nonleaf():
    """A (1, 3) float64 graph tensor: in-place changes are allowed on it under no_grad."""
    return Tensor(np.array([[0.5, 1.0, 1.5]]), requires_grad=True) * 1.0


@pytest.mark.parametrize("op, name", INPUT_SAVERS, ids=[n for _, n in INPUT_SAVERS])
def test_every_op_saving_its_input_checks_its_version(op, name):
    x = _nonleaf()
    out = op(x).sum()
    with tl.no_grad():
        x.mul_(0.5)
    with pytest.raises(RuntimeError, match=rf"saved by {name} for backward"):
        out.backward()


@pytest.mark.parametrize("op, name", OUTPUT_SAVERS, ids=[n for _, n in OUTPUT_SAVERS])
def test_every_op_saving_its_output_checks_its_version(op, name):
    x = _nonleaf()
    y = op(x)
    out = y.sum()                        # Sum saves nothing: only the op itself can object
    with tl.no_grad():
        y.mul_(0.5)
    with pytest.raises(RuntimeError, match=rf"saved by {name} for backward"):
        out.backward()
    # changing the *input* of an output-saving op is harmless: its gradient needs only y
    x2 = _nonleaf()
    out2 = op(x2).sum()
    with tl.no_grad():
        x2.mul_(0.5)
    out2.backward()


def test_ops_that_save_nothing_are_unaffected():
    """Add needs no values for its gradient: modifying its input is harmless."""
    w = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])
    loss = (w + c).sum()
    c.add_(10.0)
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_in_place_after_backward_is_fine_and_retained_graph_then_raises():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss = model(tl.ones(4, 3)).sum()
    loss.backward(retain_graph=True)
    opt.step()                           # updates the parameters in place (under no_grad)
    with pytest.raises(RuntimeError, match=r"saved by LinearFunction .*modified in place"):
        loss.backward()                  # the retained graph saw the old weights
    # a fresh forward after the step is the normal, valid pattern
    model.zero_grad()
    model(tl.ones(4, 3)).sum().backward()
    assert model.weight.grad is not None


@pytest.mark.parametrize("modify", list(INPLACE.values()), ids=list(INPLACE))
def test_leaf_requiring_grad_cannot_be_modified_in_place_while_recording(modify):
    w = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad cannot be modified "
                                           r"in place.*tl.no_grad"):
        modify(w)
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0, 3.0])  # left untouched
    assert w._version == 0
    with tl.no_grad():
        modify(w)                        # the documented way (optimiser updates)
    assert w._version == 1


@pytest.mark.parametrize("modify", list(INPLACE.values()), ids=list(INPLACE))
def test_graph_tensor_cannot_be_modified_in_place_while_recording(modify):
    y = Tensor([1.0, 2.0, 3.0], requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"in-place modification of a tensor produced by a "
                                           r"recorded op.*out-of-place"):
        modify(y)


def test_setitem_with_a_tensor_requiring_grad_is_refused():
    target = tl.zeros(3)
    with pytest.raises(RuntimeError, match=r"__setitem__: .*tl.where / tl.cat"):
        target[0] = Tensor(1.0, requires_grad=True)


def test_plus_equals_rebinds_and_keeps_gradients_right():
    """``x += y`` builds a new tensor (no __iadd__): the saved x is untouched."""
    assert not hasattr(Tensor, "__iadd__") and not hasattr(Tensor, "__imul__")
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    x = _f64(4.0, 5.0, 6.0)
    alias = x
    loss = (w * x).sum()                 # Mul saves x
    x += 100.0                           # rebinds x; the saved tensor keeps its values
    x *= 2.0
    assert x is not alias and alias._version == 0
    np.testing.assert_array_equal(alias.numpy(), [4.0, 5.0, 6.0])
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [4.0, 5.0, 6.0])


def test_plus_equals_on_a_graph_tensor_and_a_leaf_is_differentiable():
    w = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    h = w * w
    h += w                               # h = w^2 + w, recorded as an Add node
    h -= 1.0
    h *= 3.0                             # 3 (w^2 + w - 1)
    h.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 3 * (2 * np.array([0.5, -1.0]) + 1))
    acc = w                              # accumulating into a leaf name is fine too
    acc += 1.0
    assert acc is not w and w._version == 0 and not acc.is_leaf


def test_data_is_an_uncounted_escape_hatch():
    """Writing through ``.data`` bypasses version counting (documented; as PyTorch)."""
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = _f64(3.0, 4.0)
    loss = (w * x).sum()
    x.data[...] = 10.0                   # the raw array: no version bump, no error
    assert x._version == 0
    loss.backward()                      # uses the modified values, silently
    np.testing.assert_array_equal(w.grad.numpy(), [10.0, 10.0])
    # the supported way to change a parameter's values without autograd noticing:
    with tl.no_grad():
        w.copy_(np.zeros(2))
    np.testing.assert_array_equal(w.numpy(), [0.0, 0.0])



def test_in_place_on_the_base_of_a_saved_view_is_detected():
    """``x @ W.T`` saves the transposed view of W; an optimiser step then changes W."""
    w = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    x = Tensor(np.array([[1.0, 1.0]]), requires_grad=True)
    loss = (x @ w.T).sum()               # MatMul saves w.T, a numpy view of w's array
    with tl.no_grad():
        w.sub_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_in_place_through_a_detached_alias_is_detected():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = _f64(3.0, 4.0)
    loss = (w * x).sum()
    x.detach().add_(1.0)                 # same memory as x
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()

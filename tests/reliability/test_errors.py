"""Bad input gets a specific exception with an actionable message (issue 6, part 1).

One table per area: ``(callable, exception type, regex the message must match)``. The
regexes check that the message names the op and the offending shapes/values, as
``/work/shared/API.md`` ("Errors") asks: shape mismatches are ValueError naming the op and
both shapes, autograd misuse is RuntimeError, a bad key is KeyError, a wrong type is
TypeError, a bad index is IndexError.
"""

import re

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn, optim

# Exceptions a user may see; numpy's own (AxisError, UFuncTypeError...) must never leak.
DOCUMENTED = (ValueError, TypeError, IndexError, KeyError, RuntimeError, FileNotFoundError)


def _z(*shape, **kw):
    return tl.zeros(*shape, **kw)


def _idx(*values):
    return Tensor(np.array(values, dtype=np.int64))


def _check(fn, exc, pattern):
    with pytest.raises(exc) as info:
        fn()
    error = info.value
    # exact type, not a numpy subclass that happens to inherit from ValueError/TypeError
    assert type(error).__module__ == "builtins", f"leaked {type(error).__module__}." \
                                                 f"{type(error).__name__}: {error}"
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    assert re.search(pattern, str(message)), f"{message!r} does not match {pattern!r}"


def _cases(table):
    return pytest.mark.parametrize("fn, exc, pattern", [c[1:] for c in table],
                                   ids=[c[0] for c in table])


# ------------------------------------------------------------------ creation
CREATION = [
    ("zeros-negative", lambda: tl.zeros(-1), ValueError, r"zeros: negative dimension.*\(-1,\)"),
    ("ones-negative", lambda: tl.ones(2, -3), ValueError, r"ones: negative dimension.*\(2, -3\)"),
    ("full-negative", lambda: tl.full((-1,), 1.0), ValueError, r"full: negative dimension"),
    ("randn-negative", lambda: tl.randn(-2), ValueError, r"randn: negative dimension"),
    ("rand-negative", lambda: tl.rand(3, -2), ValueError, r"rand: negative dimension"),
    ("eye-negative", lambda: tl.eye(-1), ValueError, r"eye: negative dimension"),
    ("zeros-float-size", lambda: tl.zeros(2.5), TypeError, r"shape must contain ints.*2\.5"),
    ("arange-step-zero", lambda: tl.arange(0, 5, 0), ValueError, r"arange: step must not be zero"),
    ("bad-device", lambda: tl.zeros(2, device="tpu"), ValueError, r"unknown device 'tpu'"),
    ("bad-dtype", lambda: tl.zeros(2, dtype="float17"), TypeError, r"float17"),
    ("int-requires-grad", lambda: Tensor([1, 2], requires_grad=True), RuntimeError,
     r"only floating-point tensors can require grad.*int64"),
    ("object-data", lambda: Tensor(object()), TypeError, r"cannot make a Tensor from object"),
    ("none-data", lambda: Tensor(None), TypeError, r"cannot make a Tensor from NoneType"),
    ("string-data", lambda: Tensor("abc"), TypeError,
     r"cannot make a Tensor from str of dtype <U3: tensors hold numbers"),
    ("string-array", lambda: Tensor(np.array(["a", "b"])), TypeError, r"tensors hold numbers"),
    ("ragged-list", lambda: Tensor([[1.0], [1.0, 2.0]]), TypeError,
     r"cannot make a Tensor from list: ragged lists"),
    ("astype-bad", lambda: _z(2).astype("foo"), TypeError, r"foo"),
    ("manual-seed-str", lambda: tl.manual_seed("1"), TypeError, r"manual_seed expects an int"),
    ("item-many", lambda: _z(2).item(), ValueError, r"item\(\) needs a tensor with one element"),
    ("len-0d", lambda: len(Tensor(1.0)), TypeError, r"len\(\) of a 0-d tensor"),
    ("bool-ambiguous", lambda: bool(_z(3)), RuntimeError, r"truth value.*3 elements.*ambiguous"),
]


@_cases(CREATION)
def test_creation_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


# ------------------------------------------------------- arithmetic and shape ops
SHAPES = [
    ("add-broadcast", lambda: _z(2, 3) + _z(4), ValueError, r"add: shapes \(2, 3\) and \(4,\)"),
    ("mul-broadcast", lambda: _z(2, 3) * _z(2), ValueError, r"mul: shapes \(2, 3\) and \(2,\)"),
    ("sub-broadcast", lambda: _z(5) - _z(3), ValueError, r"sub: shapes \(5,\) and \(3,\)"),
    ("div-broadcast", lambda: _z(5) / _z(3), ValueError, r"div: shapes \(5,\) and \(3,\)"),
    ("pow-broadcast", lambda: _z(5) ** _z(3), ValueError, r"pow: shapes \(5,\) and \(3,\)"),
    ("maximum-broadcast", lambda: _z(5).maximum(_z(3)), ValueError, r"maximum: shapes"),
    ("compare-broadcast", lambda: _z(5) < _z(3), ValueError, r"lt: shapes \(5,\) and \(3,\)"),
    ("matmul-align", lambda: _z(2, 3) @ _z(4, 5), ValueError,
     r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"),
    ("matmul-0d", lambda: _z(3) @ Tensor(2.0), ValueError,
     r"matmul: operands must be at least 1-D"),
    ("matmul-batch", lambda: _z(2, 2, 3) @ _z(3, 3, 4), ValueError,
     r"matmul: batch dimensions of \(2, 2, 3\) and \(3, 3, 4\)"),
    ("where-broadcast", lambda: tl.where(_z(2) > 0, _z(3), _z(4)), ValueError,
     r"where: .*\(2,\), \(3,\) and \(4,\)"),
    ("reshape-size", lambda: _z(2, 3).reshape(4, 2), ValueError,
     r"reshape: cannot reshape a tensor of shape \(2, 3\).*\(4, 2\)"),
    ("reshape-two-minus-one", lambda: _z(2, 3).reshape(-1, -1), ValueError,
     r"reshape: only one dimension can be -1"),
    ("reshape-negative", lambda: _z(2, 3).reshape(-2, -3), ValueError, r"reshape: cannot reshape"),
    ("transpose-not-perm", lambda: _z(2, 3).transpose(0, 0), ValueError,
     r"transpose: \(0, 0\) is not a permutation"),
    ("permute-out-of-range", lambda: _z(2, 3).permute(0, 5), ValueError,
     r"transpose: axes \(0, 5\) are out of range.*\(2, 3\)"),
    ("swapaxes-range", lambda: _z(2, 3).swapaxes(0, 4), ValueError,
     r"swapaxes: axis 4 is out of range"),
    ("squeeze-not-one", lambda: _z(2, 3).squeeze(0), ValueError, r"squeeze: axis 0.*size 2, not 1"),
    ("squeeze-range", lambda: _z(2, 3).squeeze(4), ValueError, r"squeeze: axis 4 is out of range"),
    ("unsqueeze-range", lambda: _z(2, 3).unsqueeze(5), ValueError,
     r"unsqueeze: axis 5 is out of range"),
    ("expand-bad", lambda: _z(2, 3).expand(4, 3), ValueError,
     r"expand: cannot broadcast shape \(2, 3\) to \(4, 3\)"),
    ("expand-fewer", lambda: _z(2, 3).expand(3), ValueError, r"expand: .*fewer dimensions"),
    ("flatten-range", lambda: _z(2, 3).flatten(4), ValueError, r"flatten: axis 4 is out of range"),
    ("pad-pairs", lambda: _z(2, 3).pad(((1, 1),)), ValueError, r"pad: got 1 .*\(2, 3\)"),
    ("pad-negative", lambda: _z(2, 3).pad(((1, 1), (-1, 0))), ValueError,
     r"pad: widths must be non-negative"),
    ("cat-shapes", lambda: tl.cat([_z(2, 3), _z(2, 4)], 0), ValueError,
     r"cat: shapes \(2, 3\) and \(2, 4\) differ"),
    ("cat-axis", lambda: tl.cat([_z(2, 3), _z(2, 3)], 3), ValueError,
     r"cat: axis 3 is out of range"),
    ("cat-ndim", lambda: tl.cat([_z(2, 3), _z(2)]), ValueError, r"cat: shapes \(2, 3\) and \(2,\)"),
    ("cat-empty", lambda: tl.cat([]), ValueError, r"cat: needs at least one tensor"),
    ("cat-0d", lambda: tl.cat([Tensor(1.0), Tensor(2.0)]), ValueError,
     r"cat: 0-d tensors cannot be concatenated.*tl.stack"),
    ("swapaxes-0d", lambda: Tensor(1.0).swapaxes(0, 0), ValueError,
     r"swapaxes: a 0-d tensor has no axes"),
    ("stack-shapes", lambda: tl.stack([_z(2, 3), _z(3, 2)]), ValueError,
     r"stack: .*\(2, 3\) and \(3, 2\)"),
    ("stack-axis", lambda: tl.stack([_z(2), _z(2)], 5), ValueError,
     r"stack: axis 5 is out of range"),
    ("clip-bounds", lambda: _z(2).clip(1, 0), ValueError, r"clip: lo=1 is larger than hi=0"),
]


@_cases(SHAPES)
def test_shape_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


# ------------------------------------------------------------------ reductions
REDUCTIONS = [
    (f"{name}-axis", lambda name=name: getattr(_z(2, 3), name)(5), ValueError,
     rf"{name}: axis 5 is out of range for a tensor with 2 dimensions")
    for name in ("sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax", "argmin")
] + [
    ("sum-axis-float", lambda: _z(2, 3).sum(1.0), TypeError, r"sum: axis must be an int"),
    ("sum-repeated-axis", lambda: _z(2, 3).sum((1, -1)), ValueError, r"sum: repeated axis"),
    ("softmax-axis", lambda: _z(2, 3).softmax(2), ValueError, r"softmax: axis 2 is out of range"),
    ("log-softmax-axis", lambda: _z(2, 3).log_softmax(-3), ValueError,
     r"log_softmax: axis -3 is out of range"),
    ("softmax-module-axis", lambda: nn.Softmax(3)(_z(2, 3)), ValueError,
     r"softmax: axis 3 is out of range"),
    ("mean-empty", lambda: _z(0, 3).mean(), ValueError, r"mean: cannot average over zero"),
    ("logsumexp-empty-axis", lambda: _z(2, 0).logsumexp(1), ValueError,
     r"max: cannot reduce over an empty axis"),
    ("max-empty", lambda: _z(0, 3).max(0), ValueError, r"max: cannot reduce over an empty axis"),
    ("argmax-empty", lambda: _z(0).argmax(), ValueError, r"argmax: empty tensor"),
    ("var-ddof", lambda: _z(1).var(ddof=1), ValueError, r"var: need more than ddof=1 elements"),
]


@_cases(REDUCTIONS)
def test_reduction_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


# -------------------------------------------------------------------- indexing
def _setitem(t, index, value):
    t[index] = value


INDEXING = [
    ("int-out-of-range", lambda: _z(2, 3)[5], IndexError,
     r"shape \(2, 3\).*index 5 is out of bounds"),
    ("too-many-indices", lambda: _z(2, 3)[0, 0, 0], IndexError,
     r"shape \(2, 3\).*too many indices"),
    ("float-index", lambda: _z(2, 3)[1.5], IndexError, r"shape \(2, 3\).*only integers"),
    ("str-index", lambda: _z(2, 3)["a"], IndexError, r"shape \(2, 3\)"),
    ("mask-shape", lambda: _z(2, 3)[Tensor(np.array([True, False, True]))], IndexError,
     r"shape \(2, 3\).*boolean index"),
    ("int-array-out-of-range", lambda: _z(2, 3)[_idx(0, 7)], IndexError, r"shape \(2, 3\)"),
    ("setitem-out-of-range", lambda: _setitem(_z(2, 3), 5, 1.0), IndexError,
     r"__setitem__: index 5 is out of bounds.*\(2, 3\)"),
    ("setitem-value-shape", lambda: _setitem(_z(2, 3), 0, _z(4)), ValueError,
     r"__setitem__: could not broadcast .*\(tensor shape \(2, 3\), value shape \(4,\)\)"),
    ("index-0d", lambda: Tensor(1.0)[0], IndexError, r"shape \(\): too many indices"),
]


@_cases(INDEXING)
def test_indexing_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


# -------------------------------------------------------------------- autograd
def _backward_twice():
    w = Tensor([1.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    loss.backward()


def _hook_no_grad():
    _z(2).register_hook(lambda g: g)


def _grad_unused():
    a, b = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    tl.grad((a * 2).sum(), [a, b])


AUTOGRAD = [
    ("backward-non-scalar", lambda: (_z(2, requires_grad=True) * 2).backward(), RuntimeError,
     r"one-element output, got shape \(2,\)"),
    ("backward-no-grad", lambda: _z(2).sum().backward(), RuntimeError, r"does not require grad"),
    ("backward-gradient-shape", lambda: (_z(2, requires_grad=True) * 2).backward(_z(3)),
     ValueError, r"gradient shape \(3,\) does not match the output shape \(2,\)"),
    ("backward-twice", _backward_twice, RuntimeError,
     r"backward through the graph of \w+ a second time.*retain_graph=True"),
    ("hook-no-grad", _hook_no_grad, RuntimeError, r"hook on a tensor that does not require grad"),
    ("retain-grad-no-grad", lambda: _z(2).retain_grad(), RuntimeError, r"retain_grad"),
    ("grad-input-no-grad", lambda: tl.grad(_z(1, requires_grad=True).sum(), [_z(1)]),
     RuntimeError, r"tl.grad: every input must be a tensor that requires grad"),
    ("grad-unused", _grad_unused, RuntimeError, r"input 1 .*not used.*allow_unused=True"),
    ("requires-grad-off-non-leaf", lambda: setattr(_z(1, requires_grad=True) * 2,
                                                   "requires_grad", False),
     RuntimeError, r"leaf tensor.*detach"),
]


@_cases(AUTOGRAD)
def test_autograd_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


# ---------------------------------------------------------------- nn layers
def _train_bn(x):
    return nn.BatchNorm1d(3)(x)


NN_LAYERS = [
    ("linear-zero-in", lambda: nn.Linear(0, 3), ValueError,
     r"Linear: sizes must be positive, got in_features=0"),
    ("linear-negative-out", lambda: nn.Linear(3, -1), ValueError, r"out_features=-1"),
    ("linear-float-size", lambda: nn.Linear(2.5, 3), TypeError,
     r"Linear: in_features must be an int"),
    ("linear-str-size", lambda: nn.Linear("a", 3), TypeError,
     r"Linear: in_features must be an int"),
    ("linear-wrong-width", lambda: nn.Linear(3, 2)(_z(4, 5)), ValueError,
     r"Linear\(in_features=3.*expected input with last dimension 3, got shape \(4, 5\)"),
    ("linear-0d-input", lambda: nn.Linear(3, 2)(Tensor(1.0)), ValueError, r"got shape \(\)"),
    ("F-linear-weight", lambda: F.linear(_z(4, 3), _z(3, 2)), ValueError,
     r"linear: input of shape \(4, 3\) does not fit a weight of shape \(3, 2\)"),
    ("F-linear-bias", lambda: F.linear(_z(4, 3), _z(2, 3), _z(3)), ValueError,
     r"linear: bias of shape \(3,\) does not fit a weight of shape \(2, 3\)"),
    ("sequential-mismatch", lambda: nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1))(_z(1, 2)),
     ValueError, r"expected input with last dimension 4, got shape \(1, 3\)"),
    ("dropout-p", lambda: nn.Dropout(1.5), ValueError, r"Dropout: p must be between 0 and 1"),
    ("F-dropout-p", lambda: F.dropout(_z(2), -0.1), ValueError, r"dropout: p must be between"),
    ("batchnorm-zero", lambda: nn.BatchNorm1d(0), ValueError, r"num_features must be positive"),
    ("batchnorm-channels", lambda: _train_bn(_z(4, 5)), ValueError,
     r"BatchNorm1d\(3\): expected 3 channels on axis 1, got input shape \(4, 5\)"),
    ("batchnorm-rank", lambda: _train_bn(_z(3)), ValueError, r"BatchNorm1d: expected a 2-D or 3-D"),
    ("batchnorm-batch-of-one", lambda: _train_bn(_z(1, 3)), ValueError,
     r"more than one value per channel, got input shape \(1, 3\)"),
    ("batchnorm-empty-batch", lambda: _train_bn(_z(0, 3)), ValueError,
     r"more than one value per channel, got input shape \(0, 3\)"),
    ("leaky-relu-slope", lambda: nn.LeakyReLU("a"), TypeError,
     r"LeakyReLU: negative_slope must be a real number"),
    ("F-leaky-relu-slope", lambda: F.leaky_relu(_z(2), "a"), TypeError,
     r"leaky_relu: negative_slope must be a real number"),
    ("elu-alpha", lambda: nn.ELU(None), TypeError, r"ELU: alpha must be a real number"),
    ("lstm-zero", lambda: nn.LSTM(0, 3), ValueError, r"LSTM: .*must be positive"),
    ("lstm-features", lambda: nn.LSTM(2, 3)(_z(4, 5, 3)), ValueError,
     r"LSTM: expected input .*features=2, got \(4, 5, 3\)"),
    ("one-hot-range", lambda: F.one_hot(_idx(0, -1), 3), ValueError,
     r"one_hot: labels must lie in \[0, 3\)"),
    ("one-hot-dtype", lambda: F.one_hot(Tensor([0.0]), 3), ValueError,
     r"one_hot: labels must be integers"),
]


@_cases(NN_LAYERS)
def test_nn_layer_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


CONV = [
    ("conv-zero-channels", lambda: nn.Conv2d(0, 3, 3), ValueError,
     r"Conv2d: in_channels must be positive, got 0"),
    ("conv-zero-kernel", lambda: nn.Conv2d(1, 3, 0), ValueError,
     r"Conv2d: kernel_size must be >= 1"),
    ("conv-zero-stride", lambda: nn.Conv2d(1, 3, 3, stride=0), ValueError,
     r"Conv2d: stride must be >= 1"),
    ("conv-negative-padding", lambda: nn.Conv2d(1, 3, 3, padding=-1), ValueError,
     r"Conv2d: padding must be >= 0"),
    ("conv-channels", lambda: nn.Conv2d(2, 3, 3)(_z(1, 1, 5, 5)), ValueError,
     r"Conv2d\(2, 3.*expected input of shape \(N, 2, H, W\), got shape \(1, 1, 5, 5\)"),
    ("conv-rank", lambda: nn.Conv2d(1, 3, 3)(_z(1, 5, 5)), ValueError, r"got shape \(1, 5, 5\)"),
    ("conv-kernel-too-big", lambda: nn.Conv2d(1, 3, 7)(_z(1, 1, 5, 5)), ValueError,
     r"conv2d: a 7x7 window does not fit the input of shape \(1, 1, 5, 5\)"),
    ("pool-zero", lambda: nn.MaxPool2d(0), ValueError, r"MaxPool2d: kernel_size must be >= 1"),
    ("pool-too-big", lambda: nn.MaxPool2d(5)(_z(1, 1, 4, 4)), ValueError,
     r"max_pool2d: a 5x5 window does not fit"),
]


@pytest.mark.skipif(not hasattr(nn, "Conv2d"), reason="nn.Conv2d not available")
@_cases(CONV)
def test_conv_layer_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


# ---------------------------------------------------------------------- losses
NAN = float("nan")


def _f(*rows):
    return Tensor(np.array(rows, dtype=np.float32))


LOSSES = [
    ("mse-shapes", lambda: F.mse_loss(_z(2, 3), _z(3, 2)), ValueError,
     r"mse_loss: input shape \(2, 3\) and target shape \(3, 2\)"),
    ("mse-reduction", lambda: F.mse_loss(_z(2), _z(2), reduction="avg"), ValueError,
     r"mse_loss: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    ("mse-nan-input", lambda: F.mse_loss(_f(NAN, 0.0), _z(2)), ValueError,
     r"mse_loss: the input of shape \(2,\) contains NaN"),
    ("mse-nan-target", lambda: F.mse_loss(_z(2), _f(0.0, NAN)), ValueError,
     r"mse_loss: the target of shape \(2,\) contains NaN"),
    ("mse-empty-batch", lambda: F.mse_loss(_z(0), _z(0)), ValueError,
     r"mse_loss: .*empty batch"),
    ("mse-int-input", lambda: F.mse_loss(Tensor([1, 2]), _z(2)), ValueError,
     r"mse_loss: the input must be floating point"),
    ("ce-target-shape", lambda: F.cross_entropy(_z(2, 3), _idx(0, 1, 2)), ValueError,
     r"cross_entropy: class-index target must have shape \(2,\) for input of shape \(2, 3\), "
     r"got \(3,\)"),
    ("ce-class-too-large", lambda: F.cross_entropy(_z(2, 3), _idx(0, 3)), ValueError,
     r"cross_entropy: class indices must lie in \[0, 3\).*from 0 to 3"),
    ("ce-class-negative", lambda: F.cross_entropy(_z(2, 3), _idx(0, -1)), ValueError,
     r"cross_entropy: class indices must lie in \[0, 3\).*from -1 to 0"),
    ("ce-logits-1d", lambda: F.cross_entropy(_z(3), _idx(0)), ValueError,
     r"cross_entropy: expected logits of shape \(N, C\), got \(3,\)"),
    ("ce-prob-shape", lambda: F.cross_entropy(_z(2, 3), _z(2, 4)), ValueError,
     r"cross_entropy: a probability target must have the logits' shape \(2, 3\), got \(2, 4\)"),
    ("ce-bool-target", lambda: F.cross_entropy(_z(2, 3), Tensor(np.array([True, False]))),
     ValueError, r"cross_entropy: target must be int64 class indices or float"),
    ("ce-nan-logits", lambda: F.cross_entropy(_f([NAN, 0.0]), _idx(0)), ValueError,
     r"cross_entropy: the input of shape \(1, 2\) contains NaN"),
    ("ce-nan-prob-target", lambda: F.cross_entropy(_z(1, 2), _f([NAN, 1.0])), ValueError,
     r"cross_entropy: the target of shape \(1, 2\) contains NaN"),
    ("ce-empty-batch", lambda: F.cross_entropy(_z(0, 3), _idx()), ValueError,
     r"cross_entropy: the input of shape \(0, 3\) is an empty batch"),
    ("ce-module-reduction", lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError,
     r"CrossEntropyLoss: reduction must be"),
    ("nll-class-range", lambda: F.nll_loss(_z(2, 3), _idx(0, 3)), ValueError,
     r"nll_loss: class indices must lie in \[0, 3\)"),
    ("nll-float-target", lambda: F.nll_loss(_z(2, 3), _z(2)), ValueError,
     r"nll_loss: target must be int64 class indices"),
    ("nll-nan", lambda: F.nll_loss(_f([NAN, 0.0]), _idx(0)), ValueError,
     r"nll_loss: the input of shape \(1, 2\) contains NaN"),
    ("bce-range", lambda: F.binary_cross_entropy(_f(1.5, 0.5), _f(0.0, 1.0)), ValueError,
     r"binary_cross_entropy: input values must lie in \[0, 1\).*with_logits"
     .replace(r"\)", r"\]")),
    ("bce-nan", lambda: F.binary_cross_entropy(_f(NAN, 0.5), _f(0.0, 1.0)), ValueError,
     r"binary_cross_entropy: the input of shape \(2,\) contains NaN"),
    ("bce-nan-target", lambda: F.binary_cross_entropy(_f(0.5, 0.5), _f(0.0, NAN)), ValueError,
     r"binary_cross_entropy: the target of shape \(2,\) contains NaN"),
    ("bce-int-target", lambda: F.binary_cross_entropy(_f(0.5), Tensor([1])), ValueError,
     r"binary_cross_entropy: target must be floating point.*target.float\(\)"),
    ("bce-shapes", lambda: F.binary_cross_entropy(_f(0.5), _f(1.0, 0.0)), ValueError,
     r"binary_cross_entropy: input shape \(1,\) and target shape \(2,\)"),
    ("bce-logits-nan", lambda: F.binary_cross_entropy_with_logits(_f(NAN, 0.5), _f(0.0, 1.0)),
     ValueError, r"binary_cross_entropy_with_logits: the input of shape \(2,\) contains NaN"),
    ("bce-logits-empty", lambda: F.binary_cross_entropy_with_logits(_z(0), _z(0)), ValueError,
     r"binary_cross_entropy_with_logits: .*empty batch"),
]


@_cases(LOSSES)
def test_loss_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


def test_softmax_of_an_empty_axis_is_empty():
    x = tl.zeros(2, 0, requires_grad=True)
    (x.softmax(-1).sum() + F.log_softmax(x, 1).sum()).backward()
    assert x.softmax(-1).shape == (2, 0) and x.grad.shape == (2, 0)


def test_losses_of_valid_edge_cases_do_not_raise():
    """Sum/none of an empty batch are well defined; an overflowing finite loss is returned."""
    assert F.cross_entropy(_z(0, 3), _idx(), reduction="sum").item() == 0.0
    assert F.mse_loss(_z(0), _z(0), reduction="none").shape == (0,)
    big = Tensor(np.array([3e38], dtype=np.float32))
    with np.errstate(over="ignore"):
        assert np.isinf(F.mse_loss(big, -big).item())  # finite inputs: no ValueError


def test_cross_entropy_with_a_masked_minus_inf_class_is_finite():
    """A -inf (masked) logit that is not the target: a finite loss and gradient."""
    logits = Tensor(np.array([[-np.inf, 0.0, 1.0]], dtype=np.float32), requires_grad=True)
    loss = F.cross_entropy(logits, _idx(1))
    loss.backward()
    assert np.isfinite(loss.item())
    assert np.all(np.isfinite(logits.grad.numpy())) and logits.grad.numpy()[0, 0] == 0.0


# --------------------------------------------------- optim, data, state dicts
def _param():
    return nn.Parameter(tl.zeros(2))


OTHER = [
    ("sgd-lr", lambda: optim.SGD([_param()], lr=-1), ValueError, r"SGD: invalid learning rate -1"),
    ("sgd-empty", lambda: optim.SGD([], lr=0.1), ValueError, r"SGD got an empty parameter list"),
    ("adam-betas", lambda: optim.Adam([_param()], betas=(1.5, 0.9)), ValueError,
     r"Adam: betas must be two numbers in \[0, 1\)"),
    ("clip-norm-negative", lambda: nn.utils.clip_grad_norm_([_param()], -1), ValueError,
     r"clip_grad_norm_: max_norm must be >= 0, got -1"),
    ("clip-value-negative", lambda: nn.utils.clip_grad_value_([_param()], -1), ValueError,
     r"clip_grad_value_: clip_value must be >= 0"),
    ("dataset-lengths", lambda: tl.data.TensorDataset(np.zeros(3), np.zeros(4)), ValueError,
     r"TensorDataset: all arrays must have the same first dimension.*\(3,\), \(4,\)"),
    ("loader-batch-size", lambda: tl.data.DataLoader(tl.data.TensorDataset(np.zeros(3)),
                                                     batch_size=0),
     ValueError, r"DataLoader: batch_size must be a positive int, got 0"),
    ("windows-length", lambda: tl.datasets.sequence_windows(np.zeros(5), 10), ValueError,
     r"sequence_windows: length must satisfy 1 <= length < len\(series\) = 5, got 10"),
    ("noisy-sine-n", lambda: tl.datasets.noisy_sine(-5), ValueError, r"noisy_sine: n must be"),
    ("state-dict-missing", lambda: nn.Linear(2, 3).load_state_dict({"weight": np.zeros((3, 2))}),
     KeyError, r"load_state_dict for Linear: missing keys \['bias'\]"),
    ("state-dict-unexpected", lambda: nn.Linear(2, 3).load_state_dict(
        {"weight": np.zeros((3, 2)), "bias": np.zeros(3), "extra": np.zeros(1)}),
     KeyError, r"unexpected keys \['extra'\]"),
    ("state-dict-shape", lambda: nn.Linear(2, 3).load_state_dict(
        {"weight": np.zeros((2, 3)), "bias": np.zeros(3)}),
     ValueError, r"key 'weight' has shape \(2, 3\) in the checkpoint but \(3, 2\) in the model"),
    ("state-dict-value", lambda: nn.Linear(2, 3).load_state_dict(
        {"weight": "abc", "bias": np.zeros(3)}),
     TypeError, r"key 'weight' holds a str that cannot be converted"),
    ("state-dict-not-a-dict", lambda: nn.Linear(2, 3).load_state_dict([1, 2]), TypeError,
     r"load_state_dict for Linear: expected a dict"),
    ("load-missing-file", lambda: tl.load("/nonexistent/model.npz"), FileNotFoundError,
     r"tl.load: no checkpoint file"),
    ("save-not-a-dict", lambda: tl.save([1], "/tmp/unused.npz"), TypeError, r"tl.save expects"),
]


@_cases(OTHER)
def test_optim_data_checkpoint_errors(fn, exc, pattern):
    _check(fn, exc, pattern)


def test_fit_on_data_with_nan_names_the_loss_and_the_cause():
    X = np.ones((8, 4), dtype=np.float32)
    X[3, 1] = np.nan
    model = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"cross_entropy: the input .* contains NaN or inf.*"
                                         r"check the data"):
        tl.train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
                     (X, np.zeros(8, dtype=np.int64)), epochs=1, batch_size=4, progress=False)


def test_failed_load_state_dict_changes_nothing():
    layer = nn.Linear(2, 3)
    before = {k: v.numpy() for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError):
        layer.load_state_dict({"weight": np.ones((3, 2)), "bias": np.ones(4)})
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_no_raw_numpy_exception_escapes_the_tables():
    """Every table entry raises a documented builtin type (checked in _check too)."""
    for table in (CREATION, SHAPES, REDUCTIONS, INDEXING, AUTOGRAD, NN_LAYERS, CONV, LOSSES,
                  OTHER, DEVICES):
        for name, _, exc, _ in table:
            assert issubclass(exc, DOCUMENTED), name


# --------------------------------------------------------------------- devices
def _cuda_available():
    try:
        return tl.cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken driver counts as no GPU
        return False


def _gpu(*shape):
    return tl.zeros(*shape, device="cuda")


DEVICES = [
    ("add-mixed-devices", lambda: _z(2) + _gpu(2), RuntimeError,
     r"add: expected all tensors on the same device, got cpu and cuda.*\.to\("),
    ("matmul-mixed-devices", lambda: _z(2, 2) @ _gpu(2, 2), RuntimeError,
     r"matmul: expected all tensors on the same device"),
    ("cat-mixed-devices", lambda: tl.cat([_z(2), _gpu(2)]), RuntimeError,
     r"cat: expected all tensors on the same device"),
    ("inplace-mixed-devices", lambda: _z(2).add_(_gpu(2)), RuntimeError,
     r"add_: tensors are on different devices \(cpu and cuda\)"),
    ("index-mixed-devices", lambda: _z(3)[_idx(0, 1).to("cuda")], RuntimeError,
     r"an index on cuda cannot index a tensor on cpu"),
]


@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU (tl.cuda.is_available())")
@_cases(DEVICES)
def test_device_errors(fn, exc, pattern):
    _check(fn, exc, pattern)

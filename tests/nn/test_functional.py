"""nn.functional layers and activations against PyTorch and hand-computed numpy values."""

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn
from tinygrad_lite.testing import gradcheck, gradgradcheck

RNG = np.random.default_rng(0)


def _x(*shape, dtype=np.float64, requires_grad=False):
    return Tensor(RNG.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACTIVATIONS = [
    ("relu", F.relu, nn.ReLU(), lambda a: np.maximum(a, 0)),
    ("sigmoid", F.sigmoid, nn.Sigmoid(), _sigmoid),
    ("tanh", F.tanh, nn.Tanh(), np.tanh),
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.2), nn.LeakyReLU(0.2),
     lambda a: np.where(a > 0, a, 0.2 * a)),
    ("elu", lambda t: F.elu(t, 1.5), nn.ELU(1.5),
     lambda a: np.where(a > 0, a, 1.5 * (np.exp(a) - 1))),
    ("softmax", lambda t: F.softmax(t, 1), nn.Softmax(1),
     lambda a: np.exp(a) / np.exp(a).sum(1, keepdims=True)),
    ("log_softmax", lambda t: F.log_softmax(t, 1), nn.LogSoftmax(1),
     lambda a: a - np.log(np.exp(a).sum(1, keepdims=True))),
]


@pytest.mark.parametrize("name,function,module,reference", ACTIVATIONS,
                         ids=[a[0] for a in ACTIVATIONS])
def test_activation_values_module_and_gradient(name, function, module, reference):
    x = _x(4, 5, requires_grad=True)
    expected = reference(x.numpy())
    np.testing.assert_allclose(function(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(module(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(function, (x,))


def test_sigmoid_float32_is_stable_and_matches_tensor_sigmoid():
    x = Tensor(np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 30.0, 1000.0], np.float32))
    y = F.sigmoid(x).numpy()
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    np.testing.assert_allclose(y, x.sigmoid().numpy(), rtol=1e-6, atol=1e-7)


def test_sigmoid_second_derivative():
    x = _x(3, 4, requires_grad=True)
    assert gradgradcheck(F.sigmoid, (x,))


def test_activations_match_torch():
    torch = pytest.importorskip("torch")
    a = RNG.standard_normal((6, 7))
    t = torch.tensor(a)
    x = Tensor(a)
    tf = torch.nn.functional
    pairs = [(F.relu(x), tf.relu(t)), (F.sigmoid(x), torch.sigmoid(t)),
             (F.tanh(x), torch.tanh(t)), (F.leaky_relu(x, 0.1), tf.leaky_relu(t, 0.1)),
             (F.elu(x, 0.7), tf.elu(t, 0.7)), (F.softmax(x, 0), tf.softmax(t, 0)),
             (F.log_softmax(x, -1), tf.log_softmax(t, -1))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)


def test_linear_values_and_gradients():
    x, w, b = _x(5, 3, requires_grad=True), _x(4, 3, requires_grad=True), _x(4,
                                                                             requires_grad=True)
    np.testing.assert_allclose(F.linear(x, w, b).numpy(),
                               x.numpy() @ w.numpy().T + b.numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.linear(x, w).numpy(), x.numpy() @ w.numpy().T, rtol=1e-12)
    assert gradcheck(F.linear, (x, w, b))
    assert gradcheck(lambda x, w: F.linear(x, w), (x, w))


def test_linear_batched_input_and_errors():
    x, w, b = _x(2, 5, 3, requires_grad=True), _x(4, 3, requires_grad=True), _x(4,
                                                                                requires_grad=True)
    assert F.linear(x, w, b).shape == (2, 5, 4)
    assert gradcheck(F.linear, (x, w, b))
    with pytest.raises(ValueError, match=r"linear.*\(5, 2\).*\(4, 3\)"):
        F.linear(_x(5, 2), w, b)
    with pytest.raises(ValueError, match="bias"):
        F.linear(_x(5, 3), w, _x(3))


def test_dropout_train_eval_scaling_and_reproducibility():
    x = tl.ones(200, 50)
    assert F.dropout(x, 0.3, training=False) is x
    tl.manual_seed(7)
    a = F.dropout(x, 0.3, training=True).numpy()
    tl.manual_seed(7)
    b = F.dropout(x, 0.3, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((a == 0).mean() - 0.3) < 0.02
    assert abs(a.mean() - 1.0) < 0.05  # inverted dropout keeps the expectation
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0.0)
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), 1.0)
    with pytest.raises(ValueError, match="p must be"):
        F.dropout(x, 1.5)


def test_dropout_gradient_is_the_mask():
    x = tl.ones(4, 6, requires_grad=True)
    tl.manual_seed(3)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())


def test_dropout_module_train_and_eval():
    layer = nn.Dropout(0.5)
    x = tl.ones(10, 10)
    assert (layer(x).numpy() == 0).any()
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    assert repr(layer) == "Dropout(p=0.5)"
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)


def test_one_hot():
    out = F.one_hot(Tensor(np.array([2, 0, 1])), 4)
    np.testing.assert_array_equal(out.numpy(), np.eye(4, dtype=np.int64)[[2, 0, 1]])
    assert out.dtype == np.int64
    assert F.one_hot(np.array([[1], [3]])).shape == (2, 1, 4)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.one_hot(Tensor(np.array([3])), 3)
    with pytest.raises(ValueError, match="integers"):
        F.one_hot(Tensor(np.array([1.0])), 3)

"""Training on "cuda" gives the CPU's parameters: one or two steps of small models.

Each test builds the same seeded model twice, trains one copy on the CPU and one moved
with ``Module.to("cuda")``, and compares every parameter afterwards (float32, 1e-5).
Runs on a GPU or in the Numba CUDA simulator, so the models are tiny.
"""

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

import tinygrad_lite as tl  # noqa: E402
from tinygrad_lite import Tensor, nn, optim  # noqa: E402
from tinygrad_lite.nn.rnn import LSTM  # noqa: E402

pytestmark = pytest.mark.cuda

TOL = 1e-5


def _train(make_model, make_optimizer, x, y, loss_fn, device, steps=1):
    """Build the seeded model on ``device``, take ``steps`` steps; (initial, final) params."""
    tl.manual_seed(0)
    model = make_model().to(device)
    initial = {k: v.numpy() for k, v in model.state_dict().items()}
    optimizer = make_optimizer(model.parameters())
    xs = Tensor(x, device=device)
    ys = Tensor(y, device=device)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(xs), ys)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    for p in model.parameters():
        assert p.device == device and p.grad.device == device and p.dtype == np.float32
    final = {k: v.numpy() for k, v in model.state_dict().items()}
    return initial, final, losses


def _assert_same_training(make_model, make_optimizer, x, y, loss_fn, steps=1):
    cpu = _train(make_model, make_optimizer, x, y, loss_fn, "cpu", steps)
    gpu = _train(make_model, make_optimizer, x, y, loss_fn, "cuda", steps)
    for key in cpu[0]:
        np.testing.assert_array_equal(gpu[0][key], cpu[0][key], err_msg=f"initial {key}")
        assert not np.allclose(cpu[1][key], cpu[0][key]) or "bias" in key, key
        np.testing.assert_allclose(gpu[1][key], cpu[1][key], rtol=TOL, atol=TOL,
                                   err_msg=f"after training: {key}")
    np.testing.assert_allclose(gpu[2], cpu[2], rtol=TOL, atol=TOL)


def _mlp():
    return nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3))


def _classification_data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((6, 4)).astype(np.float32), np.array([0, 2, 1, 1, 0, 2])


OPTIMIZERS = {
    "sgd": lambda params: optim.SGD(params, lr=0.5),
    "sgd_momentum": lambda params: optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True,
                                             weight_decay=0.01),
    "adam": lambda params: optim.Adam(params, lr=0.01),
    "adamw": lambda params: optim.AdamW(params, lr=0.01),
    "rmsprop": lambda params: optim.RMSprop(params, lr=0.01, momentum=0.5),
    "adagrad": lambda params: optim.Adagrad(params, lr=0.1),
}


def test_mlp_sgd_step_matches_the_cpu():
    """Linear + Sigmoid + Linear + CrossEntropy, one SGD step."""
    x, y = _classification_data()
    _assert_same_training(_mlp, OPTIMIZERS["sgd"], x, y, nn.CrossEntropyLoss())


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "sgd"])
def test_optimizers_update_parameters_on_the_device(name):
    x, y = _classification_data()
    _assert_same_training(_mlp, OPTIMIZERS[name], x, y, nn.CrossEntropyLoss(), steps=2)


def test_cnn_step_matches_the_cpu():
    """Conv2d + ReLU + MaxPool2d + Flatten + Linear + CrossEntropy, one SGD step."""
    if not hasattr(nn, "Conv2d") or not hasattr(nn, "MaxPool2d"):
        pytest.skip("tl.nn.Conv2d / nn.MaxPool2d do not exist yet")

    def cnn():
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(2 * 2 * 2, 3))

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    _assert_same_training(cnn, OPTIMIZERS["sgd"], x, np.array([0, 2]),
                          nn.CrossEntropyLoss())


class _Conv2d(tl.Function):
    """Conv2d (3x3, padding 1) + bias straight on the backend primitives."""

    @staticmethod
    def forward(ctx, x, w, b):
        be = x.backend
        ctx.save_for_backward(x, w)
        out = be.add(be.conv2d(x.data, w.data, 1, 1), be.reshape(b.data, (1, -1, 1, 1)))
        return Tensor._make(out, be)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        be = g.backend
        return (Tensor._make(be.conv2d_backward_input(g.data, w.data, x.shape, 1, 1), be),
                Tensor._make(be.conv2d_backward_weight(g.data, x.data, w.shape, 1, 1), be),
                Tensor._make(be.sum(g.data, axis=(0, 2, 3)), be))


class _MaxPool2d(tl.Function):
    @staticmethod
    def forward(ctx, x):
        out, ctx.indices = x.backend.max_pool2d(x.data, 2)
        ctx.x_shape = x.shape
        return Tensor._make(out, x.backend)

    @staticmethod
    def backward(ctx, g):
        be = g.backend
        return Tensor._make(be.max_pool2d_backward(g.data, ctx.indices, ctx.x_shape), be)


class _PrimitiveCNN(nn.Module):
    """Conv2d + ReLU + MaxPool2d + Flatten + Linear from the backend's conv/pool
    primitives, so the CUDA conv path trains even before nn.Conv2d exists."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(tl.randn(2, 1, 3, 3) * 0.5)
        self.bias = nn.Parameter(tl.randn(2) * 0.1)
        self.head = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        h = _MaxPool2d.apply(_Conv2d.apply(x, self.weight, self.bias).relu())
        return self.head(h.reshape(h.shape[0], -1))


def test_cnn_from_backend_primitives_step_matches_the_cpu():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    _assert_same_training(_PrimitiveCNN, OPTIMIZERS["sgd"], x, np.array([0, 2]),
                          nn.CrossEntropyLoss())


def test_lstm_step_matches_the_cpu():
    """nn.rnn.LSTM (batch 2, seq 3, hidden 4) + Linear, MSE, one SGD step."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(2, 4)
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            output, (h, c) = self.lstm(x)
            return self.head(output[:, -1]) + c[0].sum(axis=1, keepdims=True) * 0.1

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    y = rng.standard_normal((2, 1)).astype(np.float32)
    _assert_same_training(Model, OPTIMIZERS["sgd"], x, y, nn.MSELoss())


def test_module_to_moves_parameters_in_place():
    tl.manual_seed(0)
    model = _mlp()
    params = list(model.parameters())
    optimizer = optim.SGD(params, lr=0.1)
    model.to("cuda")
    assert all(p.device == "cuda" for p in model.parameters())
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    x, y = _classification_data()
    loss = nn.CrossEntropyLoss()(model(Tensor(x, device="cuda")), Tensor(y, device="cuda"))
    loss.backward()
    optimizer.step()  # the optimiser built before the move still updates them
    state = model.state_dict()
    assert all(v.device == "cuda" for v in state.values())
    model.to("cpu")
    assert all(p.device == "cpu" and p.grad.device == "cpu" for p in model.parameters())
    model.load_state_dict({k: v.numpy() for k, v in state.items()})


def test_module_dtype_and_state_dict_on_cuda(tmp_path):
    tl.manual_seed(0)
    cpu_model = _mlp()
    model = _mlp().to("cuda").double()
    assert all(p.device == "cuda" and p.dtype == np.float64 for p in model.parameters())
    model.load_state_dict(cpu_model.state_dict())  # CPU tensors into a CUDA model
    for (key, value), p in zip(cpu_model.state_dict().items(), model.parameters()):
        assert p.device == "cuda" and p.dtype == np.float64
        np.testing.assert_allclose(p.numpy(), value.numpy(), err_msg=key)
    path = tmp_path / "model.npz"
    tl.save(model.state_dict(), path)
    loaded = tl.load(path)
    np.testing.assert_array_equal(loaded["0.weight"], model[0].weight.numpy())

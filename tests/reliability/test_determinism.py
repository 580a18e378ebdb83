"""Determinism: ``tl.manual_seed(s)`` makes a CPU training run bit-identical (issue 6.7).

Everything random in a run (weight init, dropout masks, DataLoader / fit shuffling, the
validation split) comes from the library's one seeded generator, and the CPU maths is
deterministic, so two runs with the same seed give the same weights to the last bit.
"""

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import nn, optim
from tinygrad_lite.datasets import load_digits


def _weights(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype
        assert a[key].tobytes() == b[key].tobytes(), key     # bit for bit


def _digits_mlp_run(seed):
    tl.manual_seed(seed)
    X, y = load_digits()
    X, y = X[:600].astype(np.float32), y[:600]
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    history = tl.train.fit(model, F.cross_entropy, opt, (X, y), epochs=3, batch_size=32,
                           validation_split=0.1, shuffle=True, progress=False)
    loader = tl.data.DataLoader(tl.data.TensorDataset(X, y), batch_size=50, shuffle=True)
    sgd = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for xb, yb in loader:                # a hand-written loop on top of fit
        sgd.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        sgd.step()
    return _weights(model), history.history


def test_digits_mlp_training_is_bit_identical_under_manual_seed():
    weights_a, history_a = _digits_mlp_run(123)
    weights_b, history_b = _digits_mlp_run(123)
    _assert_identical(weights_a, weights_b)
    assert history_a == history_b
    weights_c, _ = _digits_mlp_run(124)
    assert any(weights_a[k].tobytes() != weights_c[k].tobytes() for k in weights_a)


def test_random_factories_and_dropout_repeat_under_manual_seed():
    def draws():
        tl.manual_seed(7)
        x = tl.ones(50)
        return (tl.randn(3, 4).numpy(), tl.rand(5).numpy(), F.dropout(x, 0.5).numpy(),
                nn.Linear(4, 3).weight.numpy())
    for a, b in zip(draws(), draws()):
        assert a.tobytes() == b.tobytes()


def test_digits_cnn_training_is_bit_identical_under_manual_seed():
    if not hasattr(nn, "Conv2d"):
        pytest.skip("nn.Conv2d does not exist yet (another helper is adding it)")

    def run(seed):
        tl.manual_seed(seed)
        X, y = load_digits(images=True)
        X, y = X[:256].astype(np.float32), y[:256]
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        tl.train.fit(model, F.cross_entropy, opt, (X, y), epochs=2, batch_size=32,
                     shuffle=True, progress=False)
        return _weights(model)

    _assert_identical(run(5), run(5))

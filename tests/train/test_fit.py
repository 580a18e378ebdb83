"""tl.train.fit / evaluate / predict and History."""

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn, optim
from tinygrad_lite.data import DataLoader, TensorDataset
from tinygrad_lite.train import History, _correct, accuracy


def mlp(n_in=64, n_hidden=50, n_out=10):
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.Sigmoid(), nn.Linear(n_hidden, n_out))


def small_data(n=40, n_in=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, n_classes, n)


def quick_fit(model=None, data=None, **kwargs):
    model = mlp(4, 8, 3) if model is None else model
    data = small_data() if data is None else data
    kwargs.setdefault("epochs", 2)
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("progress", False)
    return tl.train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), data,
                        **kwargs)


def test_fit_digits_reaches_95_percent(digits):
    X_train, X_test, y_train, y_test = digits
    tl.manual_seed(0)
    model = mlp()
    history = tl.train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=1.0),
                           (X_train, y_train), epochs=60, batch_size=100, progress=False)
    result = tl.train.evaluate(model, F.cross_entropy, (X_test, y_test))
    assert result["accuracy"] >= 0.95
    assert history.history["loss"][-1] < history.history["loss"][0] / 5


def test_history_keys_and_lengths_with_validation_data():
    X, y = small_data()
    history = quick_fit(data=(X[:30], y[:30]), validation_data=(X[30:], y[30:]), epochs=3)
    assert isinstance(history, History)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert history.params == {"epochs": 3, "steps": 2, "batch_size": 16}
    assert all(0.0 <= a <= 1.0 for a in history.history["val_accuracy"])


def test_validation_split_holds_out_the_end():
    X, y = small_data(n=50)
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp(4, 8, 3)

        def forward(self, x):
            seen.append((self.training, x.shape[0]))
            return self.net(x)

    model = Recorder()
    history = quick_fit(model=model, data=(X, y), validation_split=0.2, epochs=1,
                        batch_size=100)
    # 40 training samples in one batch (train mode), 10 validation samples (eval mode).
    assert seen == [(True, 40), (False, 10)]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert model.training  # the mode it had before fit


def test_validation_data_equals_evaluate_on_same_data():
    X, y = small_data()
    model = mlp(4, 8, 3)
    history = quick_fit(model=model, data=(X, y), validation_data=(X, y), epochs=1)
    result = tl.train.evaluate(model, F.cross_entropy, (X, y), batch_size=7)
    assert history.history["val_loss"][-1] == pytest.approx(result["loss"], rel=1e-5)
    assert history.history["val_accuracy"][-1] == pytest.approx(result["accuracy"])


def test_fit_leaves_eval_mode_model_in_eval_mode():
    model = mlp(4, 8, 3).eval()
    quick_fit(model=model)
    assert not model.training


def test_metrics_none_and_callable():
    assert list(quick_fit(metrics=None).history) == ["loss"]
    assert list(quick_fit(metrics=()).history) == ["loss"]

    def mean_output(output, target):
        return float(np.mean(output))

    history = quick_fit(metrics=("accuracy", mean_output))
    assert list(history.history) == ["loss", "accuracy", "mean_output"]


def test_fit_accepts_dataloader_and_tensors():
    X, y = small_data()
    loader = DataLoader(TensorDataset(X, y), batch_size=10, shuffle=True)
    history = quick_fit(data=loader, validation_data=(Tensor(X), Tensor(y)))
    assert history.params["steps"] == 4
    assert len(history.history["val_loss"]) == 2


def test_fit_casts_float64_data_to_model_dtype():
    X, y = small_data()
    seen = []
    model = mlp(4, 8, 3)
    original = model.forward
    model.forward = lambda x: (seen.append(x.dtype), original(x))[1]
    quick_fit(model=model, data=(X.astype(np.float64), y), epochs=1)
    assert set(seen) == {np.dtype("float32")}


def test_one_hot_targets_and_binary_accuracy():
    X, y = small_data()
    onehot = np.eye(3)[y]
    history = quick_fit(data=(X, onehot), epochs=1)
    assert 0.0 <= history.history["accuracy"][0] <= 1.0
    # accuracy rules: argmax for several columns, > 0.5 for one column
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    assert _correct(logits, np.array([0, 1])) == 1
    assert _correct(logits, np.eye(3)[[0, 2]]) == 2
    probs = np.array([[0.9], [0.2], [0.6]])
    assert _correct(probs, np.array([1, 0, 0])) == 2
    assert _correct(probs[:, 0], np.array([[1.0], [0.0], [1.0]])) == 3
    assert accuracy(probs, np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_binary_fit_with_sigmoid_output():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 2))
    y = (X[:, :1] + X[:, 1:] > 0).astype(np.float32)
    tl.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    history = tl.train.fit(model, F.binary_cross_entropy,
                           optim.SGD(model.parameters(), lr=1.0), (X, y), epochs=30,
                           batch_size=16, progress=False)
    assert history.history["accuracy"][-1] >= 0.9


def test_progress_false_prints_nothing(capsys):
    quick_fit(progress=False, validation_split=0.25)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_and_verbose_print(capsys):
    quick_fit(progress=True, epochs=2)
    captured = capsys.readouterr()
    assert "Epoch 1/2" in captured.err and "loss" in captured.err
    quick_fit(progress=False, verbose=True, epochs=2)
    captured = capsys.readouterr()
    assert captured.out.count("Epoch") == 2 and "accuracy=" in captured.out


def test_clip_grad_norm_is_applied(monkeypatch):
    import tinygrad_lite.nn.utils as utils

    calls = []
    original = utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return original(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(utils, "clip_grad_norm_", spy)
    quick_fit(clip_grad_norm=0.5, epochs=2)  # 40 samples / 16 -> 3 steps per epoch
    assert calls == [0.5] * 6


def test_clip_grad_norm_bounds_the_step():
    tl.manual_seed(3)
    X, y = small_data()
    model = mlp(4, 8, 3)
    before = [p.numpy().copy() for p in model.parameters()]
    tl.train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=1.0), (X, y),
                 epochs=1, batch_size=40, clip_grad_norm=1e-3, progress=False)
    step = np.sqrt(sum(((p.numpy() - b) ** 2).sum() for p, b in zip(model.parameters(),
                                                                     before)))
    assert step <= 1e-3 * 1.01


def test_seeded_runs_are_reproducible():
    def run():
        tl.manual_seed(7)
        return quick_fit(model=mlp(4, 8, 3), epochs=3).history

    assert run() == run()


@pytest.mark.parametrize("kwargs, message", [
    ({"data": (np.zeros((5, 4)), np.zeros(4))}, "5 samples in X but 4 in y"),
    ({"data": (np.zeros((0, 4)), np.zeros(0))}, "empty"),
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"epochs": 1.5}, "epochs must be a positive int"),
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"validation_split": 1.0}, r"validation_split must be in \[0, 1\)"),
    ({"validation_split": -0.1}, r"validation_split must be in \[0, 1\)"),
    ({"validation_split": 0.001}, "leaves 0 for validation"),
    ({"metrics": ("precision",)}, "unknown metric"),
    ({"data": np.zeros((5, 4))}, r"\(X, y\) pair"),
    ({"validation_data": (np.zeros((3, 4)), np.zeros(2))}, "validation_data has 3"),
])
def test_fit_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        quick_fit(**kwargs)


def test_fit_error_for_empty_loader_and_split_with_loader():
    X, y = small_data()
    with pytest.raises(ValueError, match="no batches"):
        quick_fit(data=DataLoader(TensorDataset(X[:0], y[:0]), batch_size=4))
    with pytest.raises(ValueError, match="validation_split needs"):
        quick_fit(data=DataLoader(TensorDataset(X, y), batch_size=4), validation_split=0.2)


def test_non_scalar_loss_is_an_error():
    model = mlp(4, 8, 3)
    X, y = small_data()
    with pytest.raises(ValueError, match="one-element Tensor"):
        tl.train.fit(model, lambda out, t: F.cross_entropy(out, t, reduction="none"),
                     optim.SGD(model.parameters(), lr=0.1), (X, y), epochs=1, batch_size=8,
                     progress=False)


def test_evaluate_and_predict():
    X, y = small_data(n=23)
    model = mlp(4, 8, 3)
    result = tl.train.evaluate(model, F.cross_entropy, (X, y), batch_size=5)
    assert set(result) == {"loss", "accuracy"} and result["loss"] > 0
    assert set(tl.train.evaluate(model, None, (X, y))) == {"accuracy"}
    assert tl.train.evaluate(model, F.cross_entropy, (X, y), metrics=None).keys() == {"loss"}
    out = tl.train.predict(model, X, batch_size=5)
    assert isinstance(out, np.ndarray) and out.shape == (23, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, model(Tensor(X.astype(np.float32))).numpy(), rtol=1e-6)
    assert tl.train.predict(model, Tensor(X[:3])).shape == (3, 3)
    assert model.training
    with pytest.raises(ValueError, match="batch_size"):
        tl.train.predict(model, X, batch_size=0)
    with pytest.raises(ValueError, match="at least one sample"):
        tl.train.predict(model, X[:0])


def test_predict_runs_in_eval_mode_without_graph():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    X, _ = small_data()
    np.testing.assert_array_equal(tl.train.predict(model, X), tl.train.predict(model, X))
    assert all(p.grad is None for p in model.parameters())


def test_history_plot():
    X, y = small_data()
    history = quick_fit(data=(X, y), validation_data=(X, y), epochs=3)
    fig = history.plot()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Loss", "Accuracy"]
    assert all(ax.get_xlabel() == "epoch" and ax.get_ylabel() for ax in fig.axes)
    assert len(fig.axes[0].get_lines()) == 2  # training and validation
    assert "History(epochs=3" in repr(history)
    with pytest.raises(ValueError, match="nothing recorded"):
        History().plot()


@pytest.mark.cuda
def test_fit_evaluate_predict_on_cuda():
    if not tl.cuda.is_available():
        pytest.skip("no CUDA GPU")
    X, y = small_data()
    tl.manual_seed(0)
    model = mlp(4, 8, 3).to("cuda")
    history = quick_fit(model=model, data=(X, y), validation_data=(X, y), epochs=2)
    assert len(history.history["val_loss"]) == 2
    assert all(p.device == "cuda" for p in model.parameters())
    out = tl.train.predict(model, X)
    assert isinstance(out, np.ndarray) and out.shape == (40, 3)
    assert "accuracy" in tl.train.evaluate(model, F.cross_entropy, (X, y))


def test_fit_with_loss_module_and_adam(digits):
    X_train, X_test, y_train, y_test = digits
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    history = tl.train.fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2),
                           (X_train, y_train), epochs=5, batch_size=64,
                           validation_data=(X_test, y_test), progress=False)
    assert history.history["val_accuracy"][-1] > 0.9

"""The lecture notes' first recurrent network: one-step prediction of a noisy sine.

The series is ``x_t = sin(0.02 t) + 2 U(0, 1)`` for t = 0..999 (``tl.datasets.noisy_sine``);
the first 800 points train, the last 200 test. As in the notes (``convertToMatrix`` with
``step = 4``), each sample is the window of the 4 previous values and its target the next
value; the notes feed the window as *one* time step with 4 features (Keras
``input_shape=(1, step)``), and so does this example. Both halves are padded with
``step`` copies of their last value, as in the notes, and the MSEs are over all windows,
as the notes' ``model.evaluate``. (The notes plot prediction i at time i; here each
prediction is drawn at the time of the value it predicts, i + step.)

Network (the notes' Keras model, written with tinygrad_lite):
``SimpleRNN(32, relu)`` -> ``Dense(8, relu)`` -> ``Dense(1)``, i.e. ``nn.RNN(4, 32,
nonlinearity="relu")`` whose last output feeds two ``nn.Linear`` layers; RMSprop with
Keras' defaults (lr 1e-3, rho 0.9), MSE loss, batch 16, 100 epochs, gradients clipped to
norm 1.

The noise alone has variance 4/12 = 0.333: no predictor can get the MSE much below that.

Run ``python examples/noisy_sine_rnn.py [--quick] [--out FOLDER] [--epochs N]``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import tinygrad_lite as tl  # noqa: E402
import tinygrad_lite.nn.functional as F  # noqa: E402
from tinygrad_lite import nn, optim  # noqa: E402
from tinygrad_lite.nn.rnn import RNN  # noqa: E402

STEP, N, TP = 4, 1000, 800


class SineRNN(nn.Module):
    """SimpleRNN(32, relu) -> Dense(8, relu) -> Dense(1), as in the notes."""

    def __init__(self, features: int = STEP, hidden: int = 32):
        super().__init__()
        self.rnn = RNN(features, hidden, nonlinearity="relu", batch_first=True)
        self.dense = nn.Linear(hidden, 8)
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        output, _ = self.rnn(x)                 # (batch, seq, 32)
        last = output[:, -1]                    # Keras' return_sequences=False
        return self.out(F.relu(self.dense(last)))


def convert_to_matrix(data: np.ndarray, step: int):
    """The notes' ``convertToMatrix``: windows of ``step`` values and the value after each.

    ``tl.datasets.sequence_windows`` does the cutting; the window is then laid out as the
    notes do, one time step of ``step`` features: ``(n, 1, step)``.
    """
    X, y = tl.datasets.sequence_windows(data, step)
    return X.reshape(len(X), 1, step), y


def make_data(seed: int = 0):
    tl.manual_seed(seed)
    series = tl.datasets.noisy_sine(N)
    train, test = series[:TP], series[TP:]
    # The notes pad both halves with `step` copies of their last value.
    train = np.append(train, np.repeat(train[-1], STEP))
    test = np.append(test, np.repeat(test[-1], STEP))
    X_train, y_train = convert_to_matrix(train, STEP)
    X_test, y_test = convert_to_matrix(test, STEP)
    return series, (X_train.astype(np.float32), y_train.astype(np.float32)), \
        (X_test.astype(np.float32), y_test.astype(np.float32))


def main(argv=None) -> dict:
    parser = _common.example_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default 100, or 8 with --quick)")
    return _common.run_example(parser.parse_args(argv), run)


def run(args) -> dict:
    epochs = args.epochs or (8 if args.quick else 100)
    series, (X_train, y_train), (X_test, y_test) = make_data(seed=0)
    print(f"noisy sine: {N} points, train {TP} / test {N - TP}, windows of {STEP} "
          f"-> X_train {X_train.shape}, X_test {X_test.shape}")

    tl.manual_seed(1)
    model = SineRNN()
    tl.summary(model, (1, STEP))
    optimizer = optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    with tl.no_grad():
        initial_loss = F.mse_loss(model(tl.Tensor(X_train)), y_train).item()
    start = time.perf_counter()
    history = tl.train.fit(model, F.mse_loss, optimizer, (X_train, y_train), epochs=epochs,
                           batch_size=16, metrics=(), clip_grad_norm=1.0, progress=False)
    seconds = time.perf_counter() - start

    train_pred = tl.train.predict(model, X_train)
    test_pred = tl.train.predict(model, X_test)
    train_mse = float(np.mean((train_pred - y_train) ** 2))
    test_mse = float(np.mean((test_pred - y_test) ** 2))
    print(f"trained {epochs} epochs in {seconds:.1f} s; loss {initial_loss:.4f} (before) -> "
          f"{history.history['loss'][-1]:.4f} (last epoch)")
    print(f"train MSE {train_mse:.4f}   test MSE {test_mse:.4f}   "
          f"(noise variance 4/12 = {4 / 12:.4f})")

    import matplotlib.pyplot as plt

    # Window i of a half predicts the value at i + STEP of that half; the last STEP windows
    # of each half predict the padding, and are not drawn.
    times = np.concatenate([np.arange(STEP, TP), TP + np.arange(STEP, N - TP)])
    predicted = np.concatenate([train_pred[:TP - STEP], test_pred[:N - TP - STEP]]).ravel()
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(np.arange(N), series, lw=0.8, color="0.6", label="data: sin(0.02 t) + 2 U(0, 1)")
    ax.plot(times, predicted, lw=1.4, color="C1", label="RNN one-step prediction")
    ax.axvline(TP, color="r", label="train | test")
    ax.set_xlabel("t")
    ax.set_title(f"SimpleRNN(32, relu): train MSE {train_mse:.3f}, test MSE {test_mse:.3f}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    figure = _common.save_figure(fig, args.out, "noisy_sine_rnn.png")
    return {"initial_loss": initial_loss, "loss": history.history["loss"],
            "train_mse": train_mse, "test_mse": test_mse, "seconds": seconds,
            "figure": figure}


if __name__ == "__main__":
    main()

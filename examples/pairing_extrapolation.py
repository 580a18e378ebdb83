"""The lecture notes' extrapolation example: recurrent networks continue the CCD series.

``tl.datasets.pairing_energies()`` holds the coupled-cluster (CCD) correlation energy of
the pairing model for 2, 4, ..., 40 particles. As in the notes, the networks see only the
first 12 points, learn "the next value from the previous two" (``format_data`` with
``length_of_sequence = 2``: 10 training windows), and then predict the remaining 8
points *autoregressively*: each prediction becomes part of the next input window.

The notes' networks, written with tinygrad_lite (Keras stacked layers = ``num_layers=2``):

* ``rnn``: SimpleRNN(200) -> Dense(1)
* ``rnn_2layers``: 2 x SimpleRNN(500, sigmoid) -> Dense(1)
* ``lstm_2layers``: 2 x LSTM(250) -> Dense(1)
* ``dnn2_gru2``: 2 x Dense(125, relu) on every step -> 2 x GRU(250) -> Dense(1)
* ``standard``: the notes' "standard" formatting for comparison: the ``rnn`` network
  learns y from x (the particle number, a sequence of length 1), and is asked for y at
  x values beyond the training range.

All are trained as in the notes with Adam (lr 1e-3) on the MSE, full batch (Keras'
``batch_size=None`` is 32 > 10 windows), with gradients clipped to norm 1, and without
the notes' 5% validation split (it would hold out one of only 10 windows).

Scaling (the notes feed the raw energies). The test values, down to -1.7, lie far outside
the training range (-0.03 to -0.87), and a tanh or sigmoid network cannot output values
it never saw. The series is smooth and nearly linear, so by default the windows are made
translation-invariant: each window is shifted so that its last value is 0, and divided by
the mean step d of the training series; the target is the next value in the same frame,
``(y[k+2] - y[k+1]) / d``. The network then learns the *increment*, whose values in the
test region are close to those it trained on. ``--scaling standard`` instead standardises
the values with the training mean and standard deviation (the usual recipe), to show
why that extrapolates worse. The ``standard`` x -> y model uses x / 24 and the same
standardised y.

The baseline is the repeat-the-last-value predictor (all 8 predictions = the 12th
value). Reported MSEs are over the 8 extrapolated points (the notes' MSE also averages in
the 12 known points, where the error is 0 by construction).

Run ``python examples/pairing_extrapolation.py [--quick] [--out FOLDER] [--epochs N]
[--scaling difference|standard] [--models rnn,lstm_2layers,...]``.
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
from tinygrad_lite.nn.rnn import GRU, LSTM, RNN  # noqa: E402

DIM = 12          # training points, as in the notes
LENGTH = 2        # window length (format_data's length_of_sequence)
MODELS = ("rnn", "rnn_2layers", "lstm_2layers", "dnn2_gru2", "standard")


# ------------------------------------------------------------------------------ models


class Recurrent(nn.Module):
    """``[per-step Dense layers] -> recurrent layer(s) -> Dense(1)`` on the last step.

    Keras' ``return_sequences=False`` is ``output[:, -1]``: the last layer's hidden state
    after the last step.
    """

    def __init__(self, recurrent: nn.Module, hidden: int, pre: nn.Module | None = None):
        super().__init__()
        self.pre = pre if pre is not None else nn.Identity()
        self.recurrent = recurrent
        self.dense = nn.Linear(hidden, 1)

    def forward(self, x):
        output, _ = self.recurrent(self.pre(x))
        return self.dense(output[:, -1])


def rnn(features: int = 1) -> nn.Module:
    """The notes' ``rnn``: SimpleRNN(200) -> Dense(1)."""
    return Recurrent(RNN(features, 200), 200)


def rnn_2layers(features: int = 1) -> nn.Module:
    """The notes' ``rnn_2layers``: two SimpleRNN(500, sigmoid) layers -> Dense(1)."""
    return Recurrent(RNN(features, 500, num_layers=2, nonlinearity="sigmoid"), 500)


def lstm_2layers(features: int = 1) -> nn.Module:
    """The notes' ``lstm_2layers``: two LSTM(250) layers -> Dense(1)."""
    return Recurrent(LSTM(features, 250, num_layers=2), 250)


def dnn2_gru2(features: int = 1) -> nn.Module:
    """The notes' ``dnn2_gru2``: Dense(125, relu) x 2 on every step -> GRU(250) x 2 -> Dense(1)."""
    pre = nn.Sequential(nn.Linear(features, 125), nn.ReLU(), nn.Linear(125, 125), nn.ReLU())
    return Recurrent(GRU(125, 250, num_layers=2), 250, pre=pre)


BUILDERS = {"rnn": rnn, "rnn_2layers": rnn_2layers, "lstm_2layers": lstm_2layers,
            "dnn2_gru2": dnn2_gru2, "standard": rnn}


# -------------------------------------------------------------------------------- data


def format_data(data: np.ndarray, length_of_sequence: int = 2):
    """The notes' ``format_data``: windows ``(n - L, L, 1)`` and the next values ``(n - L, 1)``."""
    return tl.datasets.sequence_windows(data, length_of_sequence)


class Scaler:
    """Maps windows and targets to what the network sees, and predictions back.

    ``difference``: window w -> (w - w[-1]) / d, target y -> (y - w[-1]) / d.
    ``standard``:   window w -> (w - mean) / std, target y -> (y - mean) / std.
    """

    def __init__(self, kind: str, train: np.ndarray):
        if kind not in ("difference", "standard"):
            raise ValueError(f"unknown scaling {kind!r}")
        self.kind = kind
        self.d = float(np.mean(np.abs(np.diff(train))))
        self.mean, self.std = float(np.mean(train)), float(np.std(train))

    def windows(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "difference":
            return (X - X[:, -1:, :]) / self.d
        return (X - self.mean) / self.std

    def targets(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.kind == "difference":
            return (y - X[:, -1, :]) / self.d
        return (y - self.mean) / self.std

    def unscale(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.kind == "difference":
            return X[:, -1, :] + out * self.d
        return self.mean + out * self.std


# ---------------------------------------------------------------------------- training


def train(model: nn.Module, X: np.ndarray, y: np.ndarray, epochs: int, lr: float = 1e-3):
    """Adam + MSE, full batch, gradients clipped to norm 1 (tl.train.fit)."""
    optimizer = optim.Adam(model.parameters(), lr=lr)
    history = tl.train.fit(model, F.mse_loss, optimizer, (X.astype(np.float32),
                                                          y.astype(np.float32)),
                           epochs=epochs, batch_size=len(X), shuffle=False, metrics=(),
                           clip_grad_norm=1.0, progress=False)
    return history.history["loss"]


def extrapolate(model: nn.Module, scaler: Scaler, known: np.ndarray, steps: int) -> np.ndarray:
    """The notes' ``test_rnn``: predict ``steps`` values, feeding each prediction back."""
    series = list(known)
    for _ in range(steps):
        window = np.array(series[-LENGTH:]).reshape(1, LENGTH, 1)
        out = tl.train.predict(model, scaler.windows(window).astype(np.float32))
        series.append(float(scaler.unscale(window, out.astype(np.float64))[0, 0]))
    return np.array(series[len(known):])


def run_sequence_model(name, energies, scaling, epochs):
    scaler = Scaler(scaling, energies[:DIM])
    X, y = format_data(energies[:DIM], LENGTH)
    tl.manual_seed(0)
    model = BUILDERS[name]()
    losses = train(model, scaler.windows(X), scaler.targets(X, y), epochs)
    return extrapolate(model, scaler, energies[:DIM], len(energies) - DIM), losses


def run_standard_model(n_particles, energies, epochs):
    """The notes' "standard" formatting: learn y(x) from (x, y) pairs, one step each."""
    x_scale = float(n_particles[DIM - 1])
    mean, std = float(np.mean(energies[:DIM])), float(np.std(energies[:DIM]))
    X = (n_particles[:DIM] / x_scale).reshape(DIM, 1, 1)
    y = ((energies[:DIM] - mean) / std).reshape(DIM, 1)
    tl.manual_seed(0)
    model = BUILDERS["standard"]()
    losses = train(model, X, y, epochs)
    X_new = (n_particles[DIM:] / x_scale).reshape(-1, 1, 1).astype(np.float32)
    return mean + std * tl.train.predict(model, X_new).ravel().astype(np.float64), losses


def main(argv=None) -> dict:
    parser = _common.example_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default 300, or 60 with --quick)")
    parser.add_argument("--scaling", choices=("difference", "standard"), default="difference")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {','.join(MODELS)}")
    return _common.run_example(parser.parse_args(argv), run)


def run(args) -> dict:
    epochs = args.epochs or (60 if args.quick else 300)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in BUILDERS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    n_particles, energies = tl.datasets.pairing_energies()
    truth = energies[DIM:]
    print(f"pairing energies: {len(energies)} points; training on the first {DIM} "
          f"(windows of {LENGTH}), extrapolating {len(truth)}; scaling: {args.scaling}; "
          f"{epochs} epochs")

    baseline = np.full_like(truth, energies[DIM - 1])
    results = {"repeat_last": {"mse": float(np.mean((baseline - truth) ** 2)),
                               "prediction": baseline, "seconds": 0.0}}
    print(f"{'model':<14}{'extrapolation MSE':>19}{'final loss':>12}{'time s':>8}")
    print(f"{'repeat last':<14}{results['repeat_last']['mse']:19.5f}{'-':>12}{'-':>8}")
    for name in names:
        start = time.perf_counter()
        if name == "standard":
            prediction, losses = run_standard_model(n_particles, energies, epochs)
        else:
            prediction, losses = run_sequence_model(name, energies, args.scaling, epochs)
        seconds = time.perf_counter() - start
        mse = float(np.mean((prediction - truth) ** 2))
        results[name] = {"mse": mse, "prediction": prediction, "seconds": seconds,
                         "loss": losses}
        print(f"{name:<14}{mse:19.5f}{losses[-1]:12.2e}{seconds:8.1f}")

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(n_particles, energies, "k-", lw=3, label="true (CCD)")
    ax.axvspan(n_particles[0], n_particles[DIM - 1], alpha=0.2, color="red",
               label="training region")
    x_new = n_particles[DIM:]
    ax.plot(x_new, baseline, ":", color="0.5", lw=2, label="repeat last value")
    for k, name in enumerate(names):
        ax.plot(x_new, results[name]["prediction"], "-.", marker="o", ms=3, color=f"C{k}",
                label=f"{name} (MSE {results[name]['mse']:.1e})")
    ax.set_xlabel("number of particles")
    ax.set_ylabel("correlation energy")
    ax.set_title(f"Extrapolating the pairing energies ({args.scaling} scaling)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    results["figure"] = _common.save_figure(fig, args.out, "pairing_extrapolation.png")
    return results


if __name__ == "__main__":
    main()

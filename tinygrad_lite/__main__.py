"""``python -m tinygrad_lite demo``: train the lecture notes' models and show the results.

The demo trains, on data that ships with the package (scikit-learn's digits and the
embedded CCD pairing energies), the notes' digits MLP, the digits CNN and an LSTM that
extrapolates the pairing energies; it prints a results table and writes figures (loss
curves, a computation graph, a grid-search heat map) to an output folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tinygrad_lite",
        description="tinygrad_lite: a small deep-learning framework written to be read.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="train the lecture notes' models and print the results",
        description="Train the notes' digits MLP (64-50-10, sigmoid, SGD), the digits CNN "
                    "(Conv 10x3x3 + ReLU + MaxPool + Dense 50 + Dense 10) and a 2-layer "
                    "LSTM extrapolating the CCD pairing energies; print a results table "
                    "and write figures to an output folder.")
    demo.add_argument("--quick", action="store_true",
                      help="short training runs (about 20 s); the full demo takes ~1 min")
    demo.add_argument("--out", default="tinygrad_lite_demo",
                      help="folder for the figures (default: ./tinygrad_lite_demo)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--skip", action="append", default=[],
                      choices=["mlp", "cnn", "lstm", "grid"],
                      help="skip a part of the demo (may be repeated)")
    return parser


def _split(X, y, test_fraction=0.2, seed=0):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_fraction, random_state=seed, stratify=y)


def _run_mlp(args, out):
    import tinygrad_lite as tl
    from tinygrad_lite import nn, optim

    X, y = tl.datasets.load_digits()
    X_train, X_test, y_train, y_test = _split(X.astype(np.float32), y, seed=args.seed)
    tl.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))
    epochs = 30 if args.quick else 100
    history = tl.train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0),
                           (X_train, y_train), epochs=epochs, batch_size=100,
                           validation_data=(X_test, y_test), progress=not args.no_progress)
    history.plot().savefig(os.path.join(out, "mlp_history.png"), dpi=100)
    # The computation graph of one small batch's loss: what backward walks through.
    loss = nn.functional.cross_entropy(model(tl.Tensor(X_test[:4])), tl.Tensor(y_test[:4]))
    tl.viz.draw_graph(loss, path=os.path.join(out, "mlp_graph.png"))
    return {"model": "digits MLP 64-50-10 (sigmoid, SGD)", "metric": "test accuracy",
            "value": history.history["val_accuracy"][-1], "epochs": epochs}


def _run_cnn(args, out):
    import tinygrad_lite as tl
    from tinygrad_lite import nn, optim

    X, y = tl.datasets.load_digits(images=True)
    X_train, X_test, y_train, y_test = _split(X.astype(np.float32), y, seed=args.seed)
    tl.manual_seed(args.seed)
    model = nn.Sequential(nn.Conv2d(1, 10, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(10 * 4 * 4, 50), nn.ReLU(), nn.Linear(50, 10))
    epochs = 5 if args.quick else 20
    history = tl.train.fit(model, nn.CrossEntropyLoss(),
                           optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                           (X_train, y_train), epochs=epochs, batch_size=100,
                           validation_data=(X_test, y_test), progress=not args.no_progress)
    history.plot().savefig(os.path.join(out, "cnn_history.png"), dpi=100)
    return {"model": "digits CNN conv10-pool-50-10 (ReLU, SGD+momentum)",
            "metric": "test accuracy", "value": history.history["val_accuracy"][-1],
            "epochs": epochs}


def _run_lstm(args, out):
    """The notes' pairing-energy extrapolation with a 2-layer LSTM.

    Each window of 2 energies is shown relative to its last value and divided by the
    mean step d of the training series; the network predicts the next *increment*
    (y - w[-1]) / d. Increments vary slowly along the series, so this extrapolates
    far better than feeding raw energies, which leave the training range.
    """
    import tinygrad_lite as tl
    from tinygrad_lite import nn, optim

    n, energies = tl.datasets.pairing_energies()
    n_train, window = 12, 2
    X, y = tl.datasets.sequence_windows(energies[:n_train], window)
    step = float(np.mean(np.abs(np.diff(energies[:n_train]))))
    last = X[:, -1:, :]
    X_scaled = ((X - last) / step).astype(np.float32)
    y_scaled = ((y - last[:, :, 0]) / step).astype(np.float32)

    class Extrapolator(nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.lstm = nn.LSTM(1, hidden, num_layers=2, batch_first=True)
            self.head = nn.Linear(hidden, 1)

        def forward(self, x):
            output, _ = self.lstm(x)
            return self.head(output[:, -1, :])

    tl.manual_seed(args.seed)
    model = Extrapolator(16 if args.quick else 32)
    epochs = 150 if args.quick else 400
    history = tl.train.fit(model, nn.MSELoss(), optim.Adam(model.parameters(), lr=1e-2),
                           (X_scaled, y_scaled), epochs=epochs, batch_size=len(X),
                           metrics=(), clip_grad_norm=1.0, progress=not args.no_progress)
    # Predict the 8 unseen points one step at a time, feeding predictions back in.
    series = list(energies[:n_train])
    for _ in range(len(energies) - n_train):
        recent = np.array(series[-window:])
        x = ((recent - recent[-1]) / step).reshape(1, window, 1).astype(np.float32)
        increment = float(tl.train.predict(model, x)[0, 0])
        series.append(recent[-1] + increment * step)
    predictions = np.array(series[n_train:])
    truth = energies[n_train:]
    mse = float(np.mean((predictions - truth) ** 2))
    naive = float(np.mean((energies[n_train - 1] - truth) ** 2))
    _plot_extrapolation(n, energies, n_train, predictions, os.path.join(out, "lstm_pairing.png"))
    history.plot().savefig(os.path.join(out, "lstm_history.png"), dpi=100)
    return {"model": "2-layer LSTM, pairing-energy extrapolation", "metric": "extrapolation MSE",
            "value": mse, "epochs": epochs, "note": f"repeat-last-value MSE {naive:.3g}"}


def _plot_extrapolation(n, energies, n_train, predictions, path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.axvspan(n[0], n[n_train - 1], color="0.9", label="training region")
    axes.plot(n, energies, "o-", label="CCD correlation energy")
    axes.plot(n[n_train:], predictions, "s--", label="LSTM extrapolation")
    axes.set_xlabel("number of particles")
    axes.set_ylabel("correlation energy")
    axes.set_title("Extrapolating the pairing-model energies")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _run_grid(args, out):
    """A small eta x lambda grid for the digits MLP, drawn as the notes' heat map."""
    import tinygrad_lite as tl
    from tinygrad_lite import nn, optim

    X, y = tl.datasets.load_digits()
    X_train, X_test, y_train, y_test = _split(X.astype(np.float32), y, seed=args.seed)
    etas = [1e-2, 1e-1, 1.0] if args.quick else [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    lambdas = [1e-4, 1e-2] if args.quick else [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    accuracy = np.zeros((len(etas), len(lambdas)))
    for i, eta in enumerate(etas):
        for j, lmbd in enumerate(lambdas):
            tl.manual_seed(args.seed)
            model = nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))
            history = tl.train.fit(
                model, nn.CrossEntropyLoss(),
                optim.SGD(model.parameters(), lr=eta, weight_decay=lmbd),
                (X_train, y_train), epochs=5 if args.quick else 30, batch_size=100,
                validation_data=(X_test, y_test), progress=False)
            accuracy[i, j] = history.history["val_accuracy"][-1]
    tl.viz.heatmap(accuracy, [f"{e:g}" for e in etas], [f"{v:g}" for v in lambdas],
                   "Digits MLP test accuracy", xlabel="$\\lambda$ (L2 weight decay)",
                   ylabel="$\\eta$ (learning rate)", colorbar_label="test accuracy",
                   path=os.path.join(out, "grid_heatmap.png"))
    best = np.unravel_index(np.argmax(accuracy), accuracy.shape)
    return {"model": "eta x lambda grid, digits MLP", "metric": "best test accuracy",
            "value": float(accuracy[best]),
            "note": f"eta={etas[best[0]]:g}, lambda={lambdas[best[1]]:g}"}


def run_demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    parts = [("mlp", _run_mlp), ("cnn", _run_cnn), ("lstm", _run_lstm), ("grid", _run_grid)]
    rows = []
    start_all = time.perf_counter()
    for name, run in parts:
        if name in args.skip:
            continue
        print(f"\n== {name}")
        start = time.perf_counter()
        row = run(args, out)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
    print("\nResults")
    print(f"{'model':<52} {'metric':<20} {'value':>9} {'time':>8}")
    for row in rows:
        print(f"{row['model']:<52} {row['metric']:<20} {row['value']:>9.4g} "
              f"{row['seconds']:>7.1f}s" + (f"   ({row['note']})" if row.get("note") else ""))
    print(f"\ntotal {time.perf_counter() - start_all:.1f} s; figures written to {out}:")
    for name in sorted(os.listdir(out)):
        if name.endswith(".png"):
            print(f"  {name}")
    return 0


def main(argv=None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

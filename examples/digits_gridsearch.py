"""The lecture notes' grid search over the learning rate eta and the L2 strength lambda,
on the digits, with tinygrad_lite.

Two grids, eta and lambda each in 10^-5 ... 10^1 (7 x 7), with train and test accuracy
heat maps:

1. The notes' network (64-50-10, sigmoid hidden layer, softmax output) trained the notes'
   way: cross-entropy *summed* over each batch of 100 and an L2 term whose gradient is
   ``lambda * W`` on the weights (``_common.notes_loss``), plain SGD with ``lr=eta``.
2. The notes' Keras variant ``create_neural_network_keras``: two sigmoid hidden layers
   (100 and 50 neurons) with Keras' ``l2(lambda)`` kernel regulariser (``lambda *
   sum(W**2)`` added to the *mean* cross-entropy), softmax output, SGD with ``lr=eta``.

The notes train every cell for 100 epochs; to keep this example under a minute on two
cores each cell here gets fewer epochs (printed below), which mostly lowers the accuracy
of the small learning rates. Large eta diverge (NaN loss), as in the notes: those cells
show chance accuracy (~0.1).

Run ``python examples/digits_gridsearch.py [--quick] [--out FOLDER] [--epochs N]``
(``--epochs 100`` is the notes' setting, a few minutes).
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


def create_neural_network_notes(n_hidden_neurons=50, n_categories=10):
    return nn.Sequential(nn.Linear(64, n_hidden_neurons), nn.Sigmoid(),
                         nn.Linear(n_hidden_neurons, n_categories))


def create_neural_network_keras(n_neurons_layer1, n_neurons_layer2, n_categories):
    """The notes' Keras model; the softmax output is folded into ``F.cross_entropy``."""
    return nn.Sequential(nn.Linear(64, n_neurons_layer1), nn.Sigmoid(),
                         nn.Linear(n_neurons_layer1, n_neurons_layer2), nn.Sigmoid(),
                         nn.Linear(n_neurons_layer2, n_categories))


def keras_loss(model, lmbd):
    """Mean cross-entropy plus Keras' ``l2(lmbd)`` on the two hidden layers' kernels."""
    regularised = [model[0].weight, model[2].weight]

    def loss_fn(logits, target):
        loss = F.cross_entropy(logits, target)
        if lmbd > 0.0:
            loss = loss + lmbd * sum((w ** 2).sum() for w in regularised)
        return loss
    return loss_fn


def grid_search(make_model, make_loss, eta_vals, lmbd_vals, data, epochs, target_train):
    """Train one model per (eta, lambda); return the train and test accuracy tables."""
    X_train, X_test, y_train, y_test = data
    train_accuracy = np.zeros((len(eta_vals), len(lmbd_vals)))
    test_accuracy = np.zeros_like(train_accuracy)
    for i, eta in enumerate(eta_vals):
        for j, lmbd in enumerate(lmbd_vals):
            tl.manual_seed(i * len(lmbd_vals) + j)
            model = make_model()
            loss_fn = make_loss(model, lmbd)
            with np.errstate(over="ignore", invalid="ignore"):  # the diverging cells
                tl.train.fit(model, loss_fn, optim.SGD(model.parameters(), lr=eta),
                             (X_train, target_train), epochs=epochs, batch_size=100,
                             metrics=None, progress=False)
                train_accuracy[i, j] = tl.train.evaluate(model, None, (X_train, y_train))[
                    "accuracy"]
                test_accuracy[i, j] = tl.train.evaluate(model, None, (X_test, y_test))[
                    "accuracy"]
    return train_accuracy, test_accuracy


def report(name, eta_vals, lmbd_vals, train_accuracy, test_accuracy, out, stem):
    print(f"\n{name}: test accuracy (rows eta, columns lambda)")
    print("eta \\ lambda " + " ".join(f"{v:>7g}" for v in lmbd_vals))
    for eta, row in zip(eta_vals, test_accuracy):
        print(f"{eta:>12g} " + " ".join(f"{v:7.3f}" for v in row))
    i, j = np.unravel_index(np.argmax(test_accuracy), test_accuracy.shape)
    print(f"best: eta={eta_vals[i]:g}, lambda={lmbd_vals[j]:g}: test accuracy "
          f"{test_accuracy[i, j]:.4f} (train {train_accuracy[i, j]:.4f})")
    for label, values in (("Training", train_accuracy), ("Test", test_accuracy)):
        fig = _common.heatmap(values, eta_vals, lmbd_vals, f"{name}: {label} Accuracy",
                              xlabel=r"$\lambda$", ylabel=r"$\eta$")
        _common.save_figure(fig, out, f"{stem}_{label.lower()}_accuracy.png")
    return {"best_eta": float(eta_vals[i]), "best_lambda": float(lmbd_vals[j]),
            "best_test_accuracy": float(test_accuracy[i, j])}


def main(argv=None) -> dict:
    parser = _common.example_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20,
                        help="epochs per grid cell (default 20 to stay under a minute on two "
                             "cores; the notes use 100)")
    return _common.run_example(parser.parse_args(argv), run)


def run(args) -> dict:
    if args.quick:
        eta_vals, lmbd_vals = np.logspace(-3, -1, 2), np.logspace(-4, -2, 2)
        epochs_notes, epochs_keras = 2, 2
    else:
        eta_vals, lmbd_vals = np.logspace(-5, 1, 7), np.logspace(-5, 1, 7)
        epochs_notes = epochs_keras = args.epochs
    data = _common.digits_split(seed=0)
    X_train, X_test, y_train, y_test = data
    onehot_train = _common.to_categorical_numpy(y_train, 10)
    results = {}

    start = time.perf_counter()
    print(f"1. notes' network 64-50-10, summed cross-entropy + L2, {epochs_notes} epochs per "
          f"cell (the notes use 100), batch 100, {len(eta_vals)}x{len(lmbd_vals)} grid")
    tables = grid_search(create_neural_network_notes,
                         lambda model, lmbd: (lambda out, target: _common.notes_loss(
                             model, out, target, lmbd)),
                         eta_vals, lmbd_vals, data, epochs_notes, onehot_train)
    results["notes"] = report("Notes' network", eta_vals, lmbd_vals, *tables, args.out,
                              "digits_grid_notes")
    print(f"({time.perf_counter() - start:.1f} s)")

    start = time.perf_counter()
    print(f"\n2. Keras variant 64-100-50-10, mean cross-entropy + l2(lambda), {epochs_keras} "
          f"epochs per cell (the notes use 100), batch 100")
    tables = grid_search(lambda: create_neural_network_keras(100, 50, 10), keras_loss,
                         eta_vals, lmbd_vals, data, epochs_keras, onehot_train)
    results["keras"] = report("Keras-style network", eta_vals, lmbd_vals, *tables, args.out,
                              "digits_grid_keras")
    print(f"({time.perf_counter() - start:.1f} s)")
    return results


if __name__ == "__main__":
    main()

"""The lecture notes' convolutional network on the 8x8 digits, with tinygrad_lite.

The notes' ``create_convolutional_neural_network_keras``: ``Conv2D(10 filters, 3x3,
padding="same")`` + ReLU, ``MaxPooling2D(2)``, ``Flatten``, ``Dense(50, relu)``,
``Dense(10, softmax)``, each kernel with Keras' ``l2(lambda)`` regulariser, trained with
plain SGD (``lr=eta``) on the categorical cross-entropy, batch 100. In tinygrad_lite::

    nn.Sequential(nn.Conv2d(1, 10, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Linear(160, 50), nn.ReLU(), nn.Linear(50, 10))

with the softmax folded into ``F.cross_entropy`` and the L2 term written out:
``loss = mean cross-entropy + lambda * sum(W**2)`` over the three kernels (not the
biases), exactly Keras' ``kernel_regularizer=l2(lambda)``.

1. One network trained for the notes' 100 epochs (eta=0.1, lambda=1e-4): its history
   plot and test accuracy (about 0.97-0.98 on the 20 % test split).
2. The notes' grid search over eta and lambda, each in 10^-5 ... 10^1 (7 x 7), with
   train and test accuracy heat maps. The notes train every cell for 100 epochs; here each
   cell gets ``--grid-epochs`` (default 10) to stay under a minute on two cores, which
   mostly lowers the accuracy of the small learning rates. Large eta (and large eta x
   lambda) diverge, as in the notes (where those cells show chance accuracy, ~0.1):
   the logits become NaN/inf, ``F.cross_entropy`` stops the run, and the cell shows "nan".

Run ``python examples/digits_cnn.py [--quick] [--out FOLDER] [--grid-epochs N]
[--backend numba]`` (``--backend numba``: the Numba kernels, ``tl.set_backend("numba")``).
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


def create_convolutional_neural_network(receptive_field=3, n_filters=10,
                                        n_neurons_connected=50, n_categories=10):
    """The notes' CNN for 1x8x8 images; the softmax output lives in the loss."""
    return nn.Sequential(
        nn.Conv2d(1, n_filters, receptive_field, padding="same"), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(n_filters * 4 * 4, n_neurons_connected), nn.ReLU(),
        nn.Linear(n_neurons_connected, n_categories))


def keras_l2_loss(model, lmbd):
    """Mean cross-entropy plus Keras' ``l2(lmbd)`` (``lmbd * sum(W**2)``) on every kernel."""
    kernels = [layer.weight for layer in model if isinstance(layer, (nn.Conv2d, nn.Linear))]

    def loss_fn(logits, target):
        loss = F.cross_entropy(logits, target)
        if lmbd > 0.0:
            loss = loss + lmbd * sum((w * w).sum() for w in kernels)
        return loss
    return loss_fn


def digits_images(seed: int = 0):
    """The notes' 80/20 split of the digits, as float32 images (n, 1, 8, 8)."""
    X_train, X_test, y_train, y_test = _common.digits_split(seed=seed)
    return (X_train.reshape(-1, 1, 8, 8).astype(np.float32),
            X_test.reshape(-1, 1, 8, 8).astype(np.float32), y_train, y_test)


def train(data, eta=0.1, lmbd=1e-4, epochs=100, batch_size=100, seed=0, validation=True):
    """Train the notes' CNN with SGD; return ``(model, history, test accuracy)``."""
    X_train, X_test, y_train, y_test = data
    tl.manual_seed(seed)
    model = create_convolutional_neural_network()
    with np.errstate(over="ignore", invalid="ignore"):  # diverging grid cells
        history = tl.train.fit(model, keras_l2_loss(model, lmbd),
                               optim.SGD(model.parameters(), lr=eta), (X_train, y_train),
                               epochs=epochs, batch_size=batch_size,
                               validation_data=(X_test, y_test) if validation else None,
                               metrics=("accuracy",) if validation else None, progress=False)
        test_accuracy = tl.train.evaluate(model, None, (X_test, y_test))["accuracy"]
    return model, history, test_accuracy


def grid_search(data, eta_vals, lmbd_vals, epochs):
    """One CNN per (eta, lambda); the train and test accuracy tables."""
    X_train, _, y_train, _ = data
    train_accuracy = np.zeros((len(eta_vals), len(lmbd_vals)))
    test_accuracy = np.zeros_like(train_accuracy)
    for i, eta in enumerate(eta_vals):
        for j, lmbd in enumerate(lmbd_vals):
            try:
                model, _, test_accuracy[i, j] = train(data, eta, lmbd, epochs,
                                                      seed=i * len(lmbd_vals) + j,
                                                      validation=False)
            except ValueError as error:  # F.cross_entropy refuses NaN/inf logits
                if "NaN or inf" not in str(error):
                    raise
                train_accuracy[i, j] = test_accuracy[i, j] = np.nan  # diverged
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                train_accuracy[i, j] = tl.train.evaluate(model, None,
                                                         (X_train, y_train))["accuracy"]
    return train_accuracy, test_accuracy


def main(argv=None) -> dict:
    parser = _common.example_parser(__doc__.splitlines()[0])
    parser.add_argument("--grid-epochs", type=int, default=10,
                        help="epochs per grid cell (default 10 to stay under a minute on two "
                             "cores; the notes use 100)")
    _common.add_backend_option(parser)
    return _common.run_on_backend(parser.parse_args(argv), run)


def run(args) -> dict:
    data = digits_images(seed=0)
    print(f"digits: {len(data[0])} training and {len(data[1])} test images of shape "
          f"{data[0].shape[1:]}")

    # 1. One network, the notes' settings.
    epochs = 15 if args.quick else 100
    eta, lmbd = 0.1, 1e-4
    tl.manual_seed(0)
    tl.summary(create_convolutional_neural_network(), (1, 8, 8))
    start = time.perf_counter()
    model, history, test_accuracy = train(data, eta, lmbd, epochs)
    seconds = time.perf_counter() - start
    print(f"CNN (float32, SGD eta={eta:g}, lambda={lmbd:g}, {epochs} epochs, batch 100): "
          f"{seconds:.2f} s, train accuracy {history.history['accuracy'][-1]:.4f}, "
          f"test accuracy {test_accuracy:.4f}")
    fig = history.plot()
    fig.suptitle("Digits CNN: Conv2d(10, 3x3) + MaxPool2d(2) + 50 + 10, SGD", y=1.02)
    _common.save_figure(fig, args.out, "digits_cnn_history.png")

    # 2. The eta x lambda grid with heat maps.
    if args.quick:
        eta_vals, lmbd_vals, grid_epochs = np.logspace(-2, 0, 2), np.logspace(-4, -2, 2), 2
    else:
        eta_vals, lmbd_vals = np.logspace(-5, 1, 7), np.logspace(-5, 1, 7)
        grid_epochs = args.grid_epochs
    print(f"\ngrid search: {len(eta_vals)}x{len(lmbd_vals)} (eta, lambda), {grid_epochs} "
          "epochs per cell (the notes use 100), batch 100")
    start = time.perf_counter()
    train_accuracy, test_accuracy_grid = grid_search(data, eta_vals, lmbd_vals, grid_epochs)
    print("test accuracy (rows eta, columns lambda)")
    print("eta \\ lambda " + " ".join(f"{v:>7g}" for v in lmbd_vals))
    for row_eta, row in zip(eta_vals, test_accuracy_grid):
        print(f"{row_eta:>12g} " + " ".join(f"{v:7.3f}" for v in row))
    print("(nan: the training diverged)")
    i, j = np.unravel_index(np.nanargmax(test_accuracy_grid), test_accuracy_grid.shape)
    print(f"best: eta={eta_vals[i]:g}, lambda={lmbd_vals[j]:g}: test accuracy "
          f"{test_accuracy_grid[i, j]:.4f} (train {train_accuracy[i, j]:.4f}); "
          f"{time.perf_counter() - start:.1f} s")
    for label, values in (("Training", train_accuracy), ("Test", test_accuracy_grid)):
        fig = _common.heatmap(values, eta_vals, lmbd_vals, f"Digits CNN: {label} Accuracy",
                              xlabel=r"$\lambda$", ylabel=r"$\eta$")
        _common.save_figure(fig, args.out, f"digits_cnn_grid_{label.lower()}_accuracy.png")
    return {"test_accuracy": test_accuracy, "seconds": seconds, "history": history.history,
            "grid_test_accuracy": test_accuracy_grid, "grid_train_accuracy": train_accuracy,
            "best_eta": float(eta_vals[i]), "best_lambda": float(lmbd_vals[j])}


if __name__ == "__main__":
    main()

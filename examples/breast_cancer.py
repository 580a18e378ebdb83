"""The lecture notes' breast-cancer network, with tinygrad_lite: a grid over the learning
rate and the number of hidden neurons.

The notes' ``NN_model``: ``n_layers = 2`` hidden layers of ``n_neuron`` ReLU units with
Keras' ``l2(0.01)`` kernel regulariser, a 2-unit softmax output (folded into
``F.cross_entropy``), categorical cross-entropy on one-hot targets, plain SGD, batch 100,
10% of the data held out for testing. The grid is the notes' eta in {1e-3, 1e-2, 1e-1} x
hidden neurons in {1, 10, 100, 1000}. The notes train 100 epochs; the default here is 30 to
stay under a minute on two cores (``--epochs 100`` gives the notes' setting).

Features are standardised with the *training* set's mean and standard deviation (the test
set must not leak into the preprocessing). By default all 30 features are used;
``--features notes`` takes the notes' four (mean texture, mean perimeter, mean smoothness
... columns 1, 2, 5, 8).

Run ``python examples/breast_cancer.py [--quick] [--out FOLDER] [--features all|notes]
[--epochs N]``.
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


def NN_model(inputsize, n_layers, n_neuron):  # noqa: N802 - the notes' name
    """``n_layers`` ReLU hidden layers of ``n_neuron`` units and 2 output logits."""
    layers, width = [], inputsize
    for _ in range(n_layers):
        layers += [nn.Linear(width, n_neuron), nn.ReLU()]
        width = n_neuron
    layers.append(nn.Linear(width, 2))
    return nn.Sequential(*layers)


def keras_l2_loss(model, lamda):
    """Mean cross-entropy + Keras' ``l2(lamda)``: ``lamda * sum(W**2)`` per hidden kernel."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    kernels = [layer.weight for layer in linears[:-1]]  # the output layer is not regularised

    def loss_fn(logits, target):
        loss = F.cross_entropy(logits, target)
        return loss + lamda * sum((w ** 2).sum() for w in kernels) if lamda else loss
    return loss_fn


def load_data(features: str, seed: int = 0):
    from sklearn.model_selection import train_test_split

    X, y = tl.datasets.load_breast_cancer()
    if features == "notes":
        X = X[:, [1, 2, 5, 8]]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.1, random_state=seed,
                                                        stratify=y)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return (X_train - mean) / std, (X_test - mean) / std, y_train, y_test


def main(argv=None) -> dict:
    parser = _common.example_parser(__doc__.splitlines()[0])
    parser.add_argument("--features", choices=("all", "notes"), default="all",
                        help="all 30 features (default) or the notes' four")
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs per model (default 30 to stay under a minute on two "
                             "cores; the notes use 100)")
    return _common.run_example(parser.parse_args(argv), run)


def run(args) -> dict:
    X_train, X_test, y_train, y_test = load_data(args.features)
    Y_train = _common.to_categorical_numpy(y_train, 2)  # the notes' to_categorical
    if args.quick:
        eta, n_neuron, epochs = np.logspace(-2, -1, 2), np.array([1, 10]), 5
    else:
        eta, n_neuron = np.logspace(-3, -1, 3), np.logspace(0, 3, 4, dtype=int)
        epochs = args.epochs
    lamda, n_layers, batch_size = 0.01, 2, 100
    print(f"breast cancer: {len(X_train)} training / {len(X_test)} test samples, "
          f"{X_train.shape[1]} standardised features; {n_layers} ReLU hidden layers, "
          f"l2={lamda}, SGD, {epochs} epochs, batch {batch_size}")

    train_accuracy = np.zeros((len(n_neuron), len(eta)))
    test_accuracy = np.zeros_like(train_accuracy)
    start = time.perf_counter()
    for i, neurons in enumerate(n_neuron):
        for j, lr in enumerate(eta):
            tl.manual_seed(10 * i + j)
            model = NN_model(X_train.shape[1], n_layers, int(neurons))
            tl.train.fit(model, keras_l2_loss(model, lamda),
                         optim.SGD(model.parameters(), lr=float(lr)), (X_train, Y_train),
                         epochs=epochs, batch_size=batch_size, metrics=None, progress=False)
            train_accuracy[i, j] = tl.train.evaluate(model, None, (X_train, y_train))[
                "accuracy"]
            test_accuracy[i, j] = tl.train.evaluate(model, None, (X_test, y_test))["accuracy"]
            print(f"  hidden neurons {int(neurons):5d}, learning rate {lr:g}: train accuracy "
                  f"{train_accuracy[i, j]:.3f}, test accuracy {test_accuracy[i, j]:.3f}")
    print(f"grid of {train_accuracy.size} models in {time.perf_counter() - start:.1f} s")
    i, j = np.unravel_index(np.argmax(test_accuracy), test_accuracy.shape)
    print(f"best: {int(n_neuron[i])} hidden neurons, learning rate {eta[j]:g}: "
          f"test accuracy {test_accuracy[i, j]:.4f}")
    for label, values in (("training", train_accuracy), ("testing", test_accuracy)):
        fig = _common.heatmap(values, [int(n) for n in n_neuron], list(eta),
                              f"Breast cancer, {label} accuracy", xlabel="learning rate",
                              ylabel="hidden neurons")
        _common.save_figure(fig, args.out, f"breast_cancer_{label}_accuracy.png")
    return {"train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
            "best_test_accuracy": float(test_accuracy[i, j])}


if __name__ == "__main__":
    main()

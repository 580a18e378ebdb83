"""The lecture notes' CIFAR-10 convolutional network, with tinygrad_lite.

The notes' Keras model: a convolutional base ``Conv2D(32, 3x3) -> MaxPooling2D(2) ->
Conv2D(64, 3x3) -> MaxPooling2D(2) -> Conv2D(64, 3x3)`` (ReLU after each convolution),
then ``Flatten -> Dense(64, relu) -> Dense(10)``, trained with Adam on the cross-entropy
of the logits (``SparseCategoricalCrossentropy(from_logits=True)``). In tinygrad_lite the
images are NCHW, ``(3, 32, 32)``; the shapes go 32 -> 30 -> 15 -> 13 -> 6 -> 4, so the
flattened base has 64 x 4 x 4 = 1024 features, as in the notes.

CIFAR-10 is not downloaded by the library. Get the "CIFAR-10 binary version (suitable for
C programs)", ``cifar-10-binary.tar.gz``, from https://www.cs.toronto.edu/~kriz/cifar.html,
unpack it and pass the folder::

    python examples/cifar10_cnn.py path/to/cifar-10-batches-bin [--max-per-batch N]
                                   [--epochs E] [--quick] [--out FOLDER] [--backend numba]

(``--backend numba`` runs the convolutions, pooling and matmuls on the Numba kernels.)

By default only the first 1000 images of each of the six batch files are read (5000
training and 1000 test images) and trained for 2 epochs, under a minute on two cores
(about 0.4-0.5 test accuracy); the notes' run, all 50000 images for 10 epochs, is
``--max-per-batch 10000 --epochs 10`` (about an hour on two cores; ~0.7 test accuracy).

Without a folder the example says where to put the files and runs a smoke test on
synthetic data instead: random images with random labels, one fixed batch of 32, a few
Adam steps. A network that can learn drives the loss on that batch down (it memorises it),
which checks the whole pipeline (convolutions, pooling, their gradients, Adam) in seconds.
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
from tinygrad_lite import Tensor, nn, optim  # noqa: E402

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck"]


def create_cifar10_cnn(n_categories: int = 10) -> nn.Module:
    """The notes' convolutional base + Dense(64) + Dense(10) for (3, 32, 32) images."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),     # 32x32 -> 30x30 -> 15x15
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),    # -> 13x13 -> 6x6
        nn.Conv2d(64, 64, 3), nn.ReLU(),                     # -> 4x4
        nn.Flatten(),                                        # 64 * 4 * 4 = 1024
        nn.Linear(64 * 4 * 4, 64), nn.ReLU(),
        nn.Linear(64, n_categories))


def smoke_run(steps: int = 15, batch: int = 32, seed: int = 0, lr: float = 1e-3):
    """Adam steps on one fixed batch of random images and labels; the loss per step."""
    rng = np.random.default_rng(seed)
    X = Tensor(rng.random((batch, 3, 32, 32), dtype=np.float32))
    y = Tensor(rng.integers(0, 10, batch))
    tl.manual_seed(seed)
    model = create_cifar10_cnn()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train(data, epochs: int = 2, batch_size: int = 32, lr: float = 1e-3, seed: int = 0):
    """Train the notes' CIFAR-10 CNN with Adam; return ``(model, history)``."""
    X_train, y_train, X_test, y_test = data
    tl.manual_seed(seed)
    model = create_cifar10_cnn()
    history = tl.train.fit(model, F.cross_entropy, optim.Adam(model.parameters(), lr=lr),
                           (X_train, y_train), epochs=epochs, batch_size=batch_size,
                           validation_data=(X_test, y_test), progress=False, verbose=True)
    return model, history


def plot_examples(X, y, out, name="cifar10_examples.png"):
    """The notes' 5 x 5 grid of training images with their class names."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(5, 5, figsize=(7, 7.5))
    for ax, image, label in zip(axes.flat, X[:25], y[:25]):
        ax.imshow(image.transpose(1, 2, 0))  # NCHW -> HWC for plotting
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(CLASS_NAMES[int(label)])
    for ax in list(axes.flat)[len(X[:25]):]:
        ax.axis("off")
    fig.tight_layout()
    return _common.save_figure(fig, out, name)


def main(argv=None) -> dict:
    parser = _common.example_parser(__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=None,
                        help="folder with the CIFAR-10 binary batches (cifar-10-batches-bin "
                             "or its parent); without it: a synthetic smoke run")
    parser.add_argument("--max-per-batch", type=int, default=1000,
                        help="images read from each of the six batch files (default 1000; "
                             "10000 reads everything)")
    parser.add_argument("--epochs", type=int, default=2,
                        help="training epochs (default 2; the notes use 10)")
    _common.add_backend_option(parser)
    return _common.run_on_backend(parser.parse_args(argv), run)


def run(args) -> dict:
    tl.manual_seed(0)
    tl.summary(create_cifar10_cnn(), (3, 32, 32))
    if args.data is None:
        return run_synthetic(args)
    max_per_batch = min(args.max_per_batch, 100) if args.quick else args.max_per_batch
    epochs = 1 if args.quick else args.epochs
    data = tl.datasets.load_cifar10(args.data, max_per_batch=max_per_batch)
    X_train, y_train, X_test, y_test = data
    print(f"CIFAR-10 from {args.data}: {len(X_train)} training and {len(X_test)} test images "
          f"of shape {X_train.shape[1:]}")
    plot_examples(X_train, y_train, args.out)
    start = time.perf_counter()
    model, history = train(data, epochs=epochs)
    seconds = time.perf_counter() - start
    test = tl.train.evaluate(model, F.cross_entropy, (X_test, y_test))
    print(f"Adam lr=1e-3, batch 32, {epochs} epoch(s): {seconds:.1f} s, train accuracy "
          f"{history.history['accuracy'][-1]:.4f}, test accuracy {test['accuracy']:.4f}")
    fig = history.plot()
    fig.suptitle("CIFAR-10 CNN (32-64-64 conv base + 64 + 10), Adam", y=1.02)
    _common.save_figure(fig, args.out, "cifar10_cnn_history.png")
    return {"mode": "cifar10", "n_train": len(X_train), "n_test": len(X_test),
            "test_accuracy": test["accuracy"], "seconds": seconds,
            "history": history.history}


def run_synthetic(args) -> dict:
    print("No CIFAR-10 folder given. To train on the real data, download the \"CIFAR-10 "
          "binary version (suitable for C programs)\", cifar-10-binary.tar.gz, from\n"
          "  https://www.cs.toronto.edu/~kriz/cifar.html\n"
          "unpack it (it creates cifar-10-batches-bin/ with data_batch_1.bin ... "
          "data_batch_5.bin and test_batch.bin) and run\n"
          "  python examples/cifar10_cnn.py path/to/cifar-10-batches-bin\n"
          "Meanwhile: a smoke run on synthetic data (random images and labels, one fixed "
          "batch of 32, Adam lr=1e-3).")
    steps = 8 if args.quick else 40
    start = time.perf_counter()
    losses = smoke_run(steps=steps)
    seconds = time.perf_counter() - start
    shown = sorted(set(range(0, steps, max(1, steps // 8))) | {steps - 1})
    for step in shown:
        print(f"  step {step + 1:3d}: loss {losses[step]:.4f}")
    print(f"  ({seconds:.1f} s; a guess among 10 classes has loss log(10) = {np.log(10):.3f}; "
          "the loss falls as the network memorises the batch)")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, steps + 1), losses, "o-")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("cross-entropy")
    ax.set_title("CIFAR-10 CNN on one fixed synthetic batch")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    _common.save_figure(fig, args.out, "cifar10_cnn_smoke_loss.png")
    return {"mode": "synthetic", "losses": losses, "seconds": seconds}


if __name__ == "__main__":
    main()

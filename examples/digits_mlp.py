"""The lecture notes' digits network, trained with tinygrad_lite, and checked against the
notes' hand-written backpropagation.

1. A 64-50-10 network (sigmoid hidden layer, softmax output folded into the
   cross-entropy) trained with plain SGD on the 8x8 digits, 80/20 split, 100 epochs of
   batch 100. ``F.cross_entropy`` averages over the batch, so ``lr=1.0`` here is the
   notes' ``eta=0.01`` with gradients summed over a batch of 100.
2. The notes' ``NeuralNetwork`` (numpy, float64, gradients written out by hand) and the
   same network built from ``nn.Linear`` layers in float64 start from the same weights and
   see the same minibatches; the autograd gradients and the trained weights agree to
   float64 round-off. The notes' L2 term (``lmbd * W`` added to the weight gradients only)
   is reproduced with an explicit ``(lmbd/2) * sum(W**2)`` term in the loss (see
   ``_common.notes_loss``), not with ``weight_decay`` (which would decay the biases too).

Run ``python examples/digits_mlp.py [--quick] [--out FOLDER]``.
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


def build_model() -> nn.Module:
    """The notes' 64-50-10 network; the softmax lives in the loss (F.cross_entropy)."""
    return nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))


def main(argv=None) -> dict:
    args = _common.example_parser(__doc__.splitlines()[0]).parse_args(argv)
    return _common.run_example(args, run)


def run(args) -> dict:
    epochs = 15 if args.quick else 100
    X_train, X_test, y_train, y_test = _common.digits_split(seed=0)
    print(f"digits: {len(X_train)} training and {len(X_test)} test images, 64 pixels each")

    # 1. The library: model, summary, fit.
    tl.manual_seed(0)
    model = build_model()
    tl.summary(model, (64,))
    optimizer = optim.SGD(model.parameters(), lr=1.0)
    start = time.perf_counter()
    history = tl.train.fit(model, F.cross_entropy, optimizer, (X_train, y_train),
                           epochs=epochs, batch_size=100, validation_data=(X_test, y_test),
                           progress=False)
    seconds = time.perf_counter() - start
    test = tl.train.evaluate(model, F.cross_entropy, (X_test, y_test))
    print(f"tinygrad_lite (float32, SGD lr=1.0, {epochs} epochs, batch 100): "
          f"{seconds:.2f} s, train accuracy {history.history['accuracy'][-1]:.4f}, "
          f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}")
    fig = history.plot()
    fig.suptitle("Digits MLP 64-50-10 (sigmoid), SGD", y=1.02)
    _common.save_figure(fig, args.out, "digits_mlp_history.png")

    # 2. The notes' hand-written network: same accuracy, and the same numbers.
    notes_net = _common.NeuralNetwork(X_train, _common.to_categorical_numpy(y_train, 10),
                                      epochs=epochs, batch_size=100, eta=0.01, lmbd=0.0,
                                      rng=np.random.default_rng(0))
    notes_net.train()
    notes_accuracy = float(np.mean(notes_net.predict(X_test) == y_test))
    print(f"notes' hand-written network (eta=0.01, summed gradients): "
          f"test accuracy {notes_accuracy:.4f}")

    comparison = _common.compare_with_notes(X_train, y_train, epochs=1 if args.quick else 3,
                                            eta=0.01, lmbd=0.01)
    print(f"autograd vs hand-written backprop, float64, same initial weights and "
          f"minibatches ({comparison['steps']} SGD steps, lmbd=0.01):")
    print(f"  max |gradient difference| at step 1:      {comparison['grad_diff']:.3e}")
    print(f"  max |weight difference| after training:   {comparison['weight_diff']:.3e} "
          f"(weights up to {comparison['weight_scale']:.2f} in size)")
    return {"test_accuracy": test["accuracy"], "notes_accuracy": notes_accuracy,
            "history": history.history, **comparison}


if __name__ == "__main__":
    main()

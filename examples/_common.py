"""Helpers shared by the examples, the tests and the MLP benchmark.

- :func:`example_parser` / :func:`output_dir`: the ``--out`` and ``--quick`` options every
  example has, and the folder its figures go to (``examples/output/`` by default).
- :func:`digits_split`: the notes' 80/20 split of the scikit-learn digits.
- :class:`NeuralNetwork`: the lecture notes' hand-written numpy network (sigmoid hidden
  layer, softmax output, cross-entropy, L2 ``lmbd``, backpropagation written out by hand),
  kept in the notes' structure so the library's autograd can be checked against it.
- :func:`copy_notes_weights` / :func:`library_mlp`: the same network built from
  ``nn.Linear`` layers with the hand-written network's weights copied in;
  :func:`notes_loss` the loss whose gradient is the notes' hand-written one, and
  :func:`compare_with_notes` the side-by-side training used by ``digits_mlp.py`` and the
  tests.
- :func:`heatmap` (``tl.viz.heatmap`` or a matplotlib fallback), :func:`save_figure`,
  :func:`use_agg_backend` and :func:`blas_threads` (one BLAS thread for tiny matrices).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

EXAMPLES_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(EXAMPLES_DIR, "output")


def example_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="folder for the PNG figures (default: examples/output/)")
    parser.add_argument("--quick", action="store_true",
                        help="a fast smoke run (fewer epochs / a smaller grid)")
    return parser


def output_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def save_figure(fig, out: str, name: str) -> str:
    """Save ``fig`` as ``out/name`` (PNG), close it, and return the path."""
    import matplotlib.pyplot as plt

    path = os.path.join(output_dir(out), name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved {path}")
    return path


def use_agg_backend() -> None:
    """Draw off-screen: the examples save PNGs and never open a window."""
    import matplotlib

    matplotlib.use("Agg")


def digits_split(seed: int = 0, train_size: float = 0.8):
    """The digits (pixels scaled to [0, 1]) split 80/20 as in the notes."""
    from sklearn.model_selection import train_test_split

    import tinygrad_lite as tl

    X, y = tl.datasets.load_digits()
    return train_test_split(X, y, train_size=train_size, random_state=seed, stratify=y)


def to_categorical_numpy(integer_vector, n_categories=None):
    """The notes' one-hot encoding."""
    integer_vector = np.asarray(integer_vector)
    n_inputs = len(integer_vector)
    n_categories = n_categories or int(np.max(integer_vector)) + 1
    onehot_vector = np.zeros((n_inputs, n_categories))
    onehot_vector[range(n_inputs), integer_vector] = 1
    return onehot_vector


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class NeuralNetwork:
    """The lecture notes' network, with its hand-written backpropagation (float64).

    Weights are laid out as in the notes: ``hidden_weights`` is ``(n_features, n_hidden)``
    and the forward pass is ``X @ W + b``. The gradients are *summed* over the minibatch
    (not averaged) and the L2 term adds ``lmbd * W`` to the weight gradients (not to the
    biases), exactly as in the notes. Changes from the notes: the generator is a parameter
    (``rng``), and ``train`` can be given the minibatch indices to use (so another
    implementation can be fed the very same batches); ``backpropagation`` also keeps the
    gradients as attributes before updating.
    """

    def __init__(self, X_data, Y_data, n_hidden_neurons=50, n_categories=10, epochs=10,
                 batch_size=100, eta=0.1, lmbd=0.0, rng=None):
        self.X_data_full = X_data
        self.Y_data_full = Y_data

        self.n_inputs = X_data.shape[0]
        self.n_features = X_data.shape[1]
        self.n_hidden_neurons = n_hidden_neurons
        self.n_categories = n_categories

        self.epochs = epochs
        self.batch_size = batch_size
        self.iterations = self.n_inputs // self.batch_size
        self.eta = eta
        self.lmbd = lmbd
        self.rng = rng if rng is not None else np.random.default_rng()

        self.create_biases_and_weights()

    def create_biases_and_weights(self):
        self.hidden_weights = self.rng.standard_normal((self.n_features, self.n_hidden_neurons))
        self.hidden_bias = np.zeros(self.n_hidden_neurons) + 0.01

        self.output_weights = self.rng.standard_normal((self.n_hidden_neurons,
                                                        self.n_categories))
        self.output_bias = np.zeros(self.n_categories) + 0.01

    def feed_forward(self):
        # feed-forward for training
        self.z_h = np.matmul(self.X_data, self.hidden_weights) + self.hidden_bias
        self.a_h = sigmoid(self.z_h)

        self.z_o = np.matmul(self.a_h, self.output_weights) + self.output_bias

        exp_term = np.exp(self.z_o)
        self.probabilities = exp_term / np.sum(exp_term, axis=1, keepdims=True)

    def feed_forward_out(self, X):
        # feed-forward for output
        z_h = np.matmul(X, self.hidden_weights) + self.hidden_bias
        a_h = sigmoid(z_h)

        z_o = np.matmul(a_h, self.output_weights) + self.output_bias

        exp_term = np.exp(z_o)
        probabilities = exp_term / np.sum(exp_term, axis=1, keepdims=True)
        return probabilities

    def backpropagation(self):
        error_output = self.probabilities - self.Y_data
        error_hidden = np.matmul(error_output, self.output_weights.T) * self.a_h * (1 - self.a_h)

        self.output_weights_gradient = np.matmul(self.a_h.T, error_output)
        self.output_bias_gradient = np.sum(error_output, axis=0)

        self.hidden_weights_gradient = np.matmul(self.X_data.T, error_hidden)
        self.hidden_bias_gradient = np.sum(error_hidden, axis=0)

        if self.lmbd > 0.0:
            self.output_weights_gradient += self.lmbd * self.output_weights
            self.hidden_weights_gradient += self.lmbd * self.hidden_weights

        self.output_weights -= self.eta * self.output_weights_gradient
        self.output_bias -= self.eta * self.output_bias_gradient
        self.hidden_weights -= self.eta * self.hidden_weights_gradient
        self.hidden_bias -= self.eta * self.hidden_bias_gradient

    def predict(self, X):
        probabilities = self.feed_forward_out(X)
        return np.argmax(probabilities, axis=1)

    def predict_probabilities(self, X):
        return self.feed_forward_out(X)

    def minibatches(self):
        """The notes' sampling: each iteration draws ``batch_size`` distinct samples."""
        data_indices = np.arange(self.n_inputs)
        return [[self.rng.choice(data_indices, size=self.batch_size, replace=False)
                 for _ in range(self.iterations)] for _ in range(self.epochs)]

    def train(self, batches=None, on_step=None):
        """``batches``: list (epochs) of lists (iterations) of index arrays; default: the
        notes' random draws. ``on_step(self)`` is called after each update, if given."""
        batches = self.minibatches() if batches is None else batches
        for epoch_batches in batches:
            for chosen_datapoints in epoch_batches:
                # minibatch training data
                self.X_data = self.X_data_full[chosen_datapoints]
                self.Y_data = self.Y_data_full[chosen_datapoints]

                self.feed_forward()
                self.backpropagation()
                if on_step is not None:
                    on_step(self)


def library_mlp(dnn: NeuralNetwork, dtype="float64"):
    """``Sequential(Linear, Sigmoid, Linear)`` holding a copy of ``dnn``'s weights.

    The notes store W as ``(in, out)`` and compute ``x @ W``; ``nn.Linear`` stores
    ``(out, in)`` and computes ``x @ W.T``, so the weights are transposed when copied.
    The softmax is left out of the model: ``F.cross_entropy`` takes the logits.
    """
    from tinygrad_lite import nn

    model = nn.Sequential(nn.Linear(dnn.n_features, dnn.n_hidden_neurons),
                          nn.Sigmoid(),
                          nn.Linear(dnn.n_hidden_neurons, dnn.n_categories)).to(dtype=dtype)
    copy_notes_weights(dnn, model)
    return model


def copy_notes_weights(dnn: NeuralNetwork, model) -> None:
    model.load_state_dict({"0.weight": dnn.hidden_weights.T, "0.bias": dnn.hidden_bias,
                           "2.weight": dnn.output_weights.T, "2.bias": dnn.output_bias})


def notes_loss(model, logits, onehot, lmbd):
    """The loss whose gradient is the notes' hand-written one.

    ``sum_i CE_i + (lmbd / 2) * (||W_h||^2 + ||W_o||^2)``: the cross-entropy *summed* over
    the batch (the notes sum the per-sample gradients) plus an explicit L2 term on the
    weights only, whose gradient is the notes' ``lmbd * W``. (``optim.SGD(weight_decay=
    lmbd)`` would add the same ``lmbd * W`` but to the biases too, which the notes do not.)
    """
    import tinygrad_lite.nn.functional as F

    loss = F.cross_entropy(logits, onehot, reduction="sum")
    if lmbd > 0.0:
        loss = loss + 0.5 * lmbd * ((model[0].weight ** 2).sum() + (model[2].weight ** 2).sum())
    return loss


def compare_with_notes(X, y, epochs=2, eta=0.01, lmbd=0.01, batch_size=100, seed=1):
    """Train the notes' network and the library's autograd version side by side.

    Same initial weights, same minibatches, float64. Returns a dict with the largest
    absolute differences of the first step's gradients (``grad_diff``) and of the weights
    after training (``weight_diff``), and the number of steps taken.
    """
    from tinygrad_lite import Tensor, optim

    Y = to_categorical_numpy(y, 10)
    dnn = NeuralNetwork(X, Y, n_hidden_neurons=50, n_categories=10, epochs=epochs,
                        batch_size=batch_size, eta=eta, lmbd=lmbd,
                        rng=np.random.default_rng(seed))
    model = library_mlp(dnn)
    optimizer = optim.SGD(model.parameters(), lr=eta)
    batches = dnn.minibatches()

    grad_diff, steps = [], [0]

    def library_step(notes_net):
        chosen = batches[steps[0] // notes_net.iterations][steps[0] % notes_net.iterations]
        optimizer.zero_grad()
        loss = notes_loss(model, model(Tensor(X[chosen])), Tensor(Y[chosen]), lmbd)
        loss.backward()
        if steps[0] == 0:
            pairs = [(model[0].weight.grad.numpy().T, notes_net.hidden_weights_gradient),
                     (model[0].bias.grad.numpy(), notes_net.hidden_bias_gradient),
                     (model[2].weight.grad.numpy().T, notes_net.output_weights_gradient),
                     (model[2].bias.grad.numpy(), notes_net.output_bias_gradient)]
            grad_diff.append(max(float(np.max(np.abs(a - b))) for a, b in pairs))
        optimizer.step()
        steps[0] += 1

    dnn.train(batches, on_step=library_step)
    state = model.state_dict()
    pairs = [(state["0.weight"].numpy().T, dnn.hidden_weights),
             (state["0.bias"].numpy(), dnn.hidden_bias),
             (state["2.weight"].numpy().T, dnn.output_weights),
             (state["2.bias"].numpy(), dnn.output_bias)]
    weight_diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    scale = max(float(np.max(np.abs(b))) for _, b in pairs)
    return {"grad_diff": grad_diff[0], "weight_diff": weight_diff, "weight_scale": scale,
            "steps": steps[0], "dtype": str(state["0.weight"].dtype)}


def heatmap(values, row_labels, col_labels, title, xlabel, ylabel):
    """An annotated heat map: ``tl.viz.heatmap`` when available, else plain matplotlib."""
    try:
        from tinygrad_lite import viz

        return viz.heatmap(values, row_labels, col_labels, title, xlabel=xlabel,
                           ylabel=ylabel, fmt=".3f", colorbar_label="accuracy")
    except (ImportError, AttributeError, TypeError):
        pass
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(0.9 * values.shape[1] + 2.5, 0.65 * values.shape[0] + 1.8))
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center",
                    color="black" if values[i, j] > 0.6 else "white", fontsize=8)
    ax.set_xticks(range(len(col_labels)), [f"{v:g}" for v in col_labels])
    ax.set_yticks(range(len(row_labels)), [f"{v:g}" for v in row_labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="accuracy")
    fig.tight_layout()
    return fig


def blas_threads(n: int = 1):
    """A context manager limiting numpy's BLAS to ``n`` threads.

    The examples' matrices are tiny (batch 100 x 64 features): a multi-threaded BLAS only
    adds synchronisation, and on a busy machine its spinning threads can make one small
    matrix product a thousand times slower. ``threadpoolctl`` comes with scikit-learn.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend numpy|numba``: which CPU kernels run conv, pooling and matmul."""
    parser.add_argument("--backend", choices=("numpy", "numba"), default="numpy",
                        help="CPU backend: numpy (default) or numba (the Numba conv, pooling "
                             "and matmul kernels of tinygrad_lite.kernels.cpu)")


def run_example(args, run):
    """``run(args)`` the way every example runs: figures to files (Agg), BLAS at one
    thread (the thread count comes back afterwards, also after an error)."""
    use_agg_backend()
    with blas_threads(1):
        return run(args)


def run_on_backend(args, run):
    """``run_example`` on ``args.backend``; the previous backend comes back afterwards,
    also after an error."""
    import tinygrad_lite as tl

    previous = tl.get_backend_name()
    tl.set_backend(args.backend)
    try:
        return run_example(args, run)
    finally:
        tl.set_backend(previous)

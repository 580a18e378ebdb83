"""Autograd against the lecture notes' hand-written backpropagation (examples/_common.py).

Same initial weights, same minibatches, float64: the gradients and the trained weights
must agree to round-off.
"""

import numpy as np
import pytest

import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor


@pytest.mark.parametrize("lmbd", [0.0, 0.01])
def test_autograd_matches_hand_written_backprop(digits, lmbd):
    import _common

    X_train, _, y_train, _ = digits
    result = _common.compare_with_notes(X_train, y_train, epochs=2, eta=0.01, lmbd=lmbd)
    assert result["dtype"] == "float64"
    assert result["steps"] == 2 * (len(X_train) // 100)
    assert result["grad_diff"] <= 1e-10
    assert result["weight_diff"] <= 1e-10


def test_gradients_of_one_batch_match(digits):
    import _common

    X_train, _, y_train, _ = digits
    Y = _common.to_categorical_numpy(y_train, 10)
    dnn = _common.NeuralNetwork(X_train, Y, eta=0.0, lmbd=0.1, rng=np.random.default_rng(5))
    model = _common.library_mlp(dnn)
    dnn.X_data, dnn.Y_data = X_train[:100], Y[:100]
    dnn.feed_forward()
    dnn.backpropagation()  # eta = 0: gradients only
    loss = _common.notes_loss(model, model(Tensor(X_train[:100])), Tensor(Y[:100]), 0.1)
    loss.backward()
    np.testing.assert_allclose(model[0].weight.grad.numpy().T, dnn.hidden_weights_gradient,
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(model[2].bias.grad.numpy(), dnn.output_bias_gradient,
                               rtol=0, atol=1e-10)
    # and the forward passes agree too
    probabilities = F.softmax(model(Tensor(X_train[:100])), axis=1).numpy()
    np.testing.assert_allclose(probabilities, dnn.probabilities, rtol=0, atol=1e-12)

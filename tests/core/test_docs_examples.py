"""The examples of docs/autograd.md and docs/gradient-testing.md, with their printed output.

Each example is repeated here with the values the page shows, and the pages' own code
blocks are run too, checking that every output the text quotes is what they print.
"""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.testing import GradcheckError, check_function, gradcheck, gradgradcheck

DOCS = Path(__file__).resolve().parents[2] / "docs"

# ------------------------------------------------------------ docs/autograd.md


def test_backprop_worked_example_and_the_four_equations():
    x = Tensor([[1.0, 2.0]], dtype="float64")
    t = Tensor([[1.0]], dtype="float64")
    W1 = Tensor([[0.1, -0.2], [0.3, 0.4]], dtype="float64", requires_grad=True)
    b1 = Tensor([0.0, 0.1], dtype="float64", requires_grad=True)
    W2 = Tensor([[0.5], [-0.6]], dtype="float64", requires_grad=True)
    b2 = Tensor([0.2], dtype="float64", requires_grad=True)
    a1 = (x @ W1 + b1).sigmoid()
    a2 = (a1 @ W2 + b2).sigmoid()
    cost = 0.5 * ((a2 - t) ** 2).sum()
    cost.backward()
    assert round(cost.item(), 6) == 0.10893
    np.testing.assert_array_equal(W1.grad.numpy().round(6),
                                  [[-0.012878, 0.015454], [-0.025757, 0.030908]])
    np.testing.assert_array_equal(b2.grad.numpy().round(6), [-0.116173])

    X, T, w1, w2 = x.numpy(), t.numpy(), W1.numpy(), W2.numpy()
    A1 = 1 / (1 + np.exp(-(X @ w1 + b1.numpy())))
    A2 = 1 / (1 + np.exp(-(A1 @ w2 + b2.numpy())))
    delta2 = A2 * (1 - A2) * (A2 - T)
    delta1 = (delta2 @ w2.T) * A1 * (1 - A1)
    np.testing.assert_allclose(X.T @ delta1, W1.grad.numpy())
    np.testing.assert_allclose(delta2.sum(0), b2.grad.numpy())
    np.testing.assert_allclose(delta1.sum(0), b1.grad.numpy())
    np.testing.assert_allclose(A1.T @ delta2, W2.grad.numpy())


def test_retain_graph_example():
    w = Tensor([3.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert w.grad.numpy().tolist() == [12.0]
    with pytest.raises(RuntimeError, match="^Trying to backward through the graph of Sum a sec"):
        loss.backward()


def test_newton_example():
    x = Tensor([2.0], dtype="float64", requires_grad=True)
    for _ in range(6):
        y = x ** 4 - 2 * x ** 2
        (g,) = tl.grad(y, x, create_graph=True)
        (h,) = tl.grad(g, x)
        with tl.no_grad():
            x.sub_(g.detach() / h)
    assert x.numpy().round(8).tolist() == [1.0]


# ---------------------------------------------------- docs/gradient-testing.md


class Softplus(tl.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x.exp() + 1.0).log()

    @staticmethod
    def backward(ctx, g):
        """dL/dx = g * sigmoid(x)."""
        (x,) = ctx.saved_tensors
        return g * x.sigmoid()


class WrongSoftplus(Softplus):
    @staticmethod
    def backward(ctx, g):
        """Wrong: the derivative of log(1 + e^x) is not e^x."""
        (x,) = ctx.saved_tensors
        return g * x.exp()


def test_softplus_passes_gradcheck_and_check_function():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    assert gradcheck(Softplus.apply, (x,)) and gradgradcheck(Softplus.apply, (x,))
    check_function(Softplus, max_examples=20)
    check_function(Softplus, input_shapes=[(2, 3)], max_examples=20)
    check_function(lambda a, b: Softplus.apply(a) * b, input_shapes="broadcast",
                   max_examples=20)


def test_wrong_softplus_error_messages():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongSoftplus.apply, (x,))
    assert str(info.value) == (
        "gradient mismatch for input 0 at element (0,) of output 0: analytic 1.648721271, "
        "numerical 0.6224593312 (difference 1.03)")
    with pytest.raises(GradcheckError, match=r"gradient mismatch for input 0 at element"):
        check_function(WrongSoftplus, max_examples=20)


# ------------------------------------------- the pages' own blocks and outputs


def _run_blocks(page: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    namespace: dict = {"__name__": "__docs__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M):
            exec(compile(block, page, "exec"), namespace)
    return out.getvalue()


def _quoted_outputs(page: str) -> list:
    """Every output the text claims: `prints `...`` and the ``` blocks after 'prints'."""
    text = (DOCS / page).read_text(encoding="utf-8")
    inline = re.findall(r"prints `([^`]+)`", text)
    inline += re.findall(r"prints `[^`]+` and `([^`]+)`", text)
    fenced = re.findall(r"prints[^\n]*\n\n```\n(.*?)```", text, re.S)
    return inline + [block.strip() for block in fenced]


@pytest.mark.parametrize("page", ["autograd.md", "gradient-testing.md", "architecture.md"])
def test_pages_print_what_they_say(page):
    printed = _run_blocks(page)
    quoted = _quoted_outputs(page)
    assert quoted
    for claim in quoted:
        assert claim in printed, f"{page} claims {claim!r} but printed:\n{printed}"

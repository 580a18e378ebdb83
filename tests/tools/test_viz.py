"""tl.viz: every function returns a Figure with the expected titles, labels and nodes."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import nn, viz
from tinygrad_lite.teach import Scalar


def graph_nodes(fig):
    return [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("node:")]


def count_graph(output):
    """Ops and leaf tensors reachable from ``output``, counted independently of viz."""
    ops, leaves, stack = set(), set(), [output._node]
    while stack:
        node = stack.pop()
        if id(node) in ops:
            continue
        ops.add(id(node))
        for value in node.inputs:
            if isinstance(value, (tl.Tensor, Scalar)):
                if value._node is None:
                    leaves.add(id(value))
                else:
                    stack.append(value._node)
    return ops, leaves


@pytest.fixture
def digits_loss():
    """The lecture notes' digits MLP: Linear(64, 50) + sigmoid + Linear(50, 10) + CE."""
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))
    X, y = tl.datasets.load_digits()
    x = tl.Tensor(X[:8].astype(np.float32))
    loss = F.cross_entropy(model(x), tl.Tensor(y[:8]))
    return model, loss


def test_draw_graph_one_artist_per_node(digits_loss, tmp_path):
    model, loss = digits_loss
    fig = viz.draw_graph(loss, params=model, title="digits MLP", path=tmp_path / "g.png")
    assert isinstance(fig, Figure) and (tmp_path / "g.png").stat().st_size > 1000
    ops, leaves = count_graph(loss)
    nodes = graph_nodes(fig)
    assert len(nodes) == len(ops) + len(leaves)
    kinds = [t.get_gid().split(":")[1] for t in nodes]
    assert kinds.count("param") == 4 and kinds.count("output") == 1
    labels = "\n".join(t.get_text() for t in nodes)
    # leaves show their shapes, and ops the shape of their output (8 samples x 50 units)
    for name in ("0.weight", "0.bias", "2.weight", "2.bias", "50x64 float32", "8x50 float32"):
        assert name in labels
    assert fig._suptitle.get_text() == "digits MLP"


def test_draw_graph_gradients_and_scalars():
    a = tl.Tensor([1.0, 2.0], requires_grad=True)
    a.name = "a"
    out = (a * a + a.exp()).sum()
    out.backward(retain_graph=True)
    fig = viz.draw_graph(out, show_grads=True)
    assert any("|grad|" in t.get_text() for t in graph_nodes(fig))
    # a + a style reuse: one node for the leaf, drawn once
    assert sum("a\n" in t.get_text() for t in graph_nodes(fig)) == 1
    x = Scalar(2.0, label="x")
    y = (x * 3).tanh() + x
    assert len(graph_nodes(viz.draw_graph(y))) == 5  # x, the constant 3, Mul, Tanh, Add


def test_draw_graph_of_a_deep_graph_stays_bounded():
    h = tl.zeros(2, 4)
    w = tl.randn(4, 4, requires_grad=True)
    for _ in range(60):
        h = (h @ w + 1.0).tanh()
    fig = viz.draw_graph(h.sum())
    width, height = fig.get_size_inches()
    assert len(graph_nodes(fig)) == 3 * 60 + 3  # MatMul, Add, Tanh per step; zeros, w, Sum
    assert width < 10 and height < 200


def test_draw_graph_rejects_non_tensors():
    with pytest.raises(TypeError, match="Tensor"):
        viz.draw_graph(np.ones(3))


def test_plot_history_from_dict_and_history_object(tmp_path):
    curves = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.8, 0.9]}
    fig = viz.plot_history(curves, path=tmp_path / "h.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1

    class History:
        history = curves

    assert len(viz.plot_history(History()).axes) == 2
    with pytest.raises(ValueError):
        viz.plot_history({})


def test_heatmap_annotates_every_cell(tmp_path):
    values = np.arange(12).reshape(3, 4) / 12
    fig = viz.heatmap(values, [1e-3, 1e-2, 1e-1], ["a", "b", "c", "d"], "Test Accuracy",
                      xlabel="$\\lambda$", ylabel="$\\eta$", path=tmp_path / "m.png")
    ax = fig.axes[0]
    assert ax.get_title() == "Test Accuracy" and ax.get_ylabel() == "$\\eta$"
    assert [t.get_text() for t in ax.texts][:2] == ["0.000", "0.083"] and len(ax.texts) == 12
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.001", "0.01", "0.1"]
    assert len(fig.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match="labels"):
        viz.heatmap(values, [1, 2], ["a", "b", "c", "d"])


def test_plot_activations_has_the_notes_four_panels(tmp_path):
    fig = viz.plot_activations(path=tmp_path / "a.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["sigmoid function", "step function", "sine function",
                      "Rectified linear unit"]
    step = fig.axes[1].lines[0].get_ydata()
    assert set(np.unique(step)) == {0.0, 1.0}


def test_no_pyplot_figures_are_left_open():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    viz.plot_activations()
    assert len(plt.get_fignums()) == before
    assert matplotlib.get_backend()  # any backend works: nothing is shown


def test_draw_graph_after_a_freeing_backward_explains_what_to_do():
    a = tl.Tensor([1.0, 2.0], requires_grad=True)
    out = (a * 3.0).sum()
    out.backward(retain_graph=True)
    # a Python number (the 3.0) is an attribute of Mul, not a node: a, Mul, Sum
    assert len(graph_nodes(viz.draw_graph(out, show_grads=True))) == 3
    out.backward()  # frees the graph
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        viz.draw_graph(out)

"""Memory: a used graph is released, and training does not leak (issue 6, part 4).

After ``backward()`` every node frees what it saved and its edges, so intermediate
activations die even while ``loss`` is still referenced (unless ``retain_graph=True``).
Two small training runs (an MLP 8-16-3 and an LSTM(1, 8), 1000 steps each) must keep
the number of live Tensor objects and the tracemalloc peak flat after warm-up.
"""

import gc
import tracemalloc
import weakref

import numpy as np

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn, optim

STEPS = 1000
WARMUP = 100
FIGURES = {}     # filled by the training tests; printed with -s (reported in the docs)


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Tensor))


def test_intermediates_are_freed_after_backward_while_loss_lives():
    x = Tensor(np.ones((4, 3)), requires_grad=True)
    hidden = (x * 2.0).exp()
    probe = weakref.ref(hidden)
    loss = hidden.sum()
    del hidden
    assert probe() is not None           # the graph holds it until backward
    loss.backward()
    assert probe() is None               # freed by reference counting, loss still alive
    assert loss.grad_fn is not None and loss.grad_fn.inputs is None


def test_retain_graph_keeps_the_graph_until_the_last_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    hidden = x.exp()
    probe = weakref.ref(hidden)
    loss = (hidden * hidden).sum()
    del hidden
    loss.backward(retain_graph=True)
    assert probe() is not None
    loss.backward()
    assert probe() is None
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * np.exp(2.0) * np.ones(3))


def test_dropping_the_loss_without_backward_frees_the_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    hidden = x.sin()
    probe = weakref.ref(hidden)
    loss = hidden.sum()
    del hidden, loss                     # no cycles: plain reference counting frees it
    assert probe() is None


def test_higher_order_grad_loop_does_not_leak():
    """tl.grad(create_graph=True) leaves no reference cycle behind (cf. x.backward with
    create_graph, documented in autograd.md as needing x.grad = None)."""
    x = Tensor(np.array([2.0]), requires_grad=True)

    def newton_step():
        y = x ** 4 - 2 * x ** 2
        (g,) = tl.grad(y, x, create_graph=True)
        (h,) = tl.grad(g, x)
        with tl.no_grad():
            x.sub_(g.detach() / h)

    for _ in range(5):
        newton_step()
    before = _live_tensors()
    for _ in range(50):
        newton_step()
    assert _live_tensors() <= before + 2


def _measure(step, label):
    """Run ``step`` STEPS times; live tensors and tracemalloc peaks of two late windows."""
    for _ in range(WARMUP):
        step()
    tensors_after_warmup = _live_tensors()
    window = (STEPS - WARMUP) // 2
    tracemalloc.start()
    try:
        peaks = []
        for _ in range(2):
            gc.collect()
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            for _ in range(window):
                step()
            _, peak = tracemalloc.get_traced_memory()
            gc.collect()
            current, _ = tracemalloc.get_traced_memory()
            peaks.append((peak - base, current - base))
    finally:
        tracemalloc.stop()
    tensors_at_end = _live_tensors()
    FIGURES[label] = {"tensors_after_warmup": tensors_after_warmup,
                      "tensors_at_end": tensors_at_end,
                      "peak_bytes_window1": peaks[0][0], "peak_bytes_window2": peaks[1][0],
                      "growth_bytes_window1": peaks[0][1], "growth_bytes_window2": peaks[1][1]}
    print(label, FIGURES[label])
    # flat: no tensor accumulates, the per-step working set does not grow, and what is
    # still allocated at the end of a window (relative to its start) stays small
    assert tensors_at_end <= tensors_after_warmup + 2, FIGURES[label]
    assert peaks[1][0] <= peaks[0][0] * 1.10 + 16_384, FIGURES[label]
    assert peaks[1][1] <= 16_384, FIGURES[label]   # < 40 bytes per step: no leak


def test_mlp_training_memory_is_flat():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((8, 8)).astype(np.float32))
    y = Tensor(rng.integers(0, 3, 8))
    losses = []

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses[len(losses) > 0:] = [loss.item()]   # first and latest only

    _measure(step, "mlp 8-16-3, batch 8")
    assert losses[-1] < losses[0]        # it did train


def test_lstm_training_memory_is_flat():
    tl.manual_seed(0)
    lstm, head = nn.LSTM(1, 8), nn.Linear(8, 1)
    opt = optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=0.05)
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((4, 5, 1)).astype(np.float32))
    target = Tensor(rng.standard_normal((4, 1)).astype(np.float32))
    losses = []

    def step():
        opt.zero_grad()
        output, (h, c) = lstm(x)
        loss = F.mse_loss(head(output[:, -1]), target)
        loss.backward()
        opt.step()
        losses[len(losses) > 0:] = [loss.item()]   # first and latest only

    _measure(step, "lstm(1, 8), seq 5, batch 4")
    assert losses[-1] < losses[0]
